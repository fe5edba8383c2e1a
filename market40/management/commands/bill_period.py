from django.core.management.base import BaseCommand, CommandError

from market40.commands import market_argument
from market40.errors import DomainError
from market40.formatting import vnd
from market40.progress import ProgressBar
from market40.services import billing_run_create, parse_period


class Command(BaseCommand):
    help = "Lập phiếu báo phí cho một chợ và một kỳ (tháng). Chạy lại thì không thay đổi gì."

    def add_arguments(self, parser):
        parser.add_argument("market_code")
        parser.add_argument("period", help="YYYY-MM")
        parser.add_argument("--progress", action="store_true", help="Luôn hiện thanh tiến độ.")

    def handle(self, market_code, period, progress, **options):
        market = market_argument(market_code)
        try:
            first = parse_period(period)
            bar = ProgressBar(
                f"Lập phí {market.code} {first:%m/%Y}", stream=self.stderr, force=progress
            )
            result = billing_run_create(market=market, period=first, progress=bar)
        except DomainError as error:
            raise CommandError(error.message) from None
        label = f"{first:%m/%Y}"
        if result.changed_nothing:
            self.stdout.write(
                f"Kỳ {label} của chợ {market.code}: không có gì thay đổi "
                f"({result.already_billed} hợp đồng đã được lập phí trước đó, "
                f"{result.nothing_to_bill} hợp đồng không có khoản phí nào)."
            )
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Đã lập {result.created} phiếu báo phí kỳ {label} cho chợ {market.code}, "
                f"tổng {vnd(result.total_vnd)}."
            )
        )
        if result.already_billed:
            self.stdout.write(f"  {result.already_billed} hợp đồng đã được lập phí trước đó.")
        if result.missing_readings:
            shown = ", ".join(result.missing_readings[:10])
            more = len(result.missing_readings) - 10
            self.stdout.write(
                self.style.WARNING(
                    f"  Thiếu chỉ số công tơ/lượt ({len(result.missing_readings)}): {shown}"
                    + (f" và {more} mục khác" if more > 0 else "")
                )
            )
