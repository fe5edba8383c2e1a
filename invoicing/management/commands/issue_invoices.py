from django.core.management.base import BaseCommand, CommandError

from invoicing.services import invoices_issue_for_period
from market40.commands import market_argument
from market40.errors import DomainError
from market40.formatting import vnd
from market40.progress import ProgressBar
from market40.services import parse_period


class Command(BaseCommand):
    help = (
        "Xuất hóa đơn điện tử cho mọi phiếu báo phí đã thanh toán đủ của một chợ và một kỳ "
        "(tháng) mà chưa có hóa đơn. Chạy lại thì không xuất trùng."
    )

    def add_arguments(self, parser):
        parser.add_argument("market_code")
        parser.add_argument("period", help="YYYY-MM")
        parser.add_argument("--progress", action="store_true", help="Luôn hiện thanh tiến độ.")

    def handle(self, market_code, period, progress, **options):
        market = market_argument(market_code)
        try:
            first = parse_period(period)
            bar = ProgressBar(
                f"Xuất hóa đơn {market.code} {first:%m/%Y}", stream=self.stderr, force=progress
            )
            result = invoices_issue_for_period(market=market, period=first, progress=bar)
        except DomainError as error:
            raise CommandError(error.message) from None
        label = f"{first:%m/%Y}"
        if result.changed_nothing:
            self.stdout.write(
                f"Kỳ {label} của chợ {market.code}: không xuất hóa đơn nào "
                f"({result.already_issued} phiếu đã có hóa đơn từ trước)."
            )
        else:
            total = market.invoices.filter(
                serial_code=result.serial[1:],
                number__gte=result.first_number,
                number__lte=result.last_number,
            ).values_list("total_payable_vnd", flat=True)
            self.stdout.write(
                self.style.SUCCESS(
                    f"Đã xuất {result.issued} hóa đơn kỳ {label} cho chợ {market.code}: ký hiệu "
                    f"{result.serial}, số {result.first_number}–{result.last_number}, tổng "
                    f"{vnd(sum(total))}."
                )
            )
            if result.already_issued:
                self.stdout.write(f"  {result.already_issued} phiếu đã có hóa đơn từ trước.")
        for failure in result.failures:
            self.stdout.write(
                self.style.WARNING(f"  Chưa xuất {failure.payment_code}: {failure.message}")
            )
        if result.failures:
            raise CommandError(
                f"{len(result.failures)} phiếu chưa xuất được hóa đơn (xem lý do ở trên).",
                returncode=2,
            )
