from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from exports import services
from exports.models import ExportKind
from market40.commands import market_argument
from market40.errors import DomainError
from market40.formatting import vnd
from market40.progress import ProgressBar


class Command(BaseCommand):
    help = (
        "Xuất dữ liệu kế toán của một chợ và một kỳ (tháng) ra tệp: hóa đơn XML (ZIP), bảng kê "
        "hóa đơn (XLSX/CSV), sổ MISA (chứng từ bán hàng, thu tiền gửi), công nợ theo tuổi nợ, "
        "thu tiền theo ngày/tài khoản. Ghi vào tệp tạm rồi đổi tên khi xong."
    )

    def add_arguments(self, parser):
        parser.add_argument("market_code")
        parser.add_argument("period", help="YYYY-MM")
        parser.add_argument(
            "--kind",
            required=True,
            help="Một trong: " + ", ".join(ExportKind.values),
        )
        parser.add_argument("--out", required=True, help="Đường dẫn tệp kết quả.")
        parser.add_argument(
            "--ids",
            default=None,
            help="Chỉ với xml-zip: id hóa đơn, cách nhau bằng dấu phẩy (thay cho cả kỳ).",
        )
        parser.add_argument("--progress", action="store_true", help="Luôn hiện thanh tiến độ.")

    def handle(self, market_code, period, kind, out, ids, progress, **options):
        market = market_argument(market_code)
        try:
            invoice_ids = _ids(ids)
            kind, first, invoice_ids = services.parse_request(
                kind=kind, period=period, invoice_ids=invoice_ids
            )
            services.check_selection(market, invoice_ids)
            label = f"{first:%m/%Y}" if first else f"{len(invoice_ids)} hóa đơn chọn"
            bar = ProgressBar(
                f"Xuất {kind} {market.code} {label}", stream=self.stderr, force=progress
            )
            path = Path(out).expanduser().resolve()
            result = services.write_file(
                kind=kind,
                market=market,
                period=first,
                path=path,
                progress=bar,
                invoice_ids=invoice_ids,
            )
        except DomainError as error:
            raise CommandError(error.message) from None
        figures = ", ".join(
            f"{name} {vnd(value) if name.endswith('_vnd') else value}"
            for name, value in result.totals.items()
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Đã ghi {path} ({path.stat().st_size:,} byte, {result.rows} dòng"
                + (f"; {figures}" if figures else "")
                + ")."
            )
        )


def _ids(raw: str | None) -> list[int] | None:
    if raw is None:
        return None
    try:
        return [int(part) for part in raw.replace(" ", "").split(",") if part]
    except ValueError:
        raise CommandError(
            f"--ids “{raw}” không hợp lệ: cần các số id hóa đơn cách nhau bằng dấu phẩy."
        ) from None
