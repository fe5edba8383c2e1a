from django.core.management.base import BaseCommand, CommandError

from market40.commands import market_argument
from market40.errors import DomainError
from market40.services import stalls_import
from market40.tables import TableError


class Command(BaseCommand):
    help = (
        "Nhập danh sách sạp (và tiểu thương, hợp đồng) từ tệp CSV/XLSX. Cột: mã sạp, khu, "
        "loại, diện tích, [đang hoạt động, họ tên, điện thoại, MST, CCCD, địa chỉ, ngày bắt "
        "đầu]. Nếu có dòng lỗi thì không ghi gì."
    )

    def add_arguments(self, parser):
        parser.add_argument("market_code")
        parser.add_argument("file")
        parser.add_argument("--dry-run", action="store_true", help="Chỉ kiểm tra, không ghi.")

    def handle(self, market_code, file, dry_run, **options):
        market = market_argument(market_code)
        try:
            report = stalls_import(market=market, path=file, dry_run=dry_run)
        except FileNotFoundError:
            raise CommandError(f"Không tìm thấy tệp “{file}”.") from None
        except TableError as error:
            raise CommandError(str(error)) from None
        except DomainError as error:
            for line in error.extra.get("errors", []):
                self.stderr.write(f"  {line}")
            raise CommandError(error.message) from None
        verb = "Sẽ nhập" if dry_run else "Đã nhập"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} {report.stalls} sạp, {report.holders} tiểu thương, "
                f"{report.leases} hợp đồng từ {report.rows} dòng."
            )
        )
