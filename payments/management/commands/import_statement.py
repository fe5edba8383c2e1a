from django.core.management.base import BaseCommand, CommandError

from market40.errors import DomainError
from market40.progress import ProgressBar
from payments.models import BankConnection
from payments.statements import (
    BANK_CHOICES,
    StatementRejected,
    StatementReport,
    load_profile,
    statement_import,
)

SHOWN_LINES = 20


def _vnd(amount: int | None) -> str:
    return "—" if amount is None else f"{amount:,} đ".replace(",", ".")


class Command(BaseCommand):
    help = (
        "Nhập sao kê ngân hàng (CSV/XLSX) vào một kết nối: bỏ qua giao dịch đã có (webhook "
        "hoặc lần nhập trước), tạo giao dịch mới rồi đối soát như webhook. Có dòng lỗi thì "
        "không ghi gì. Mẫu: " + ", ".join(BANK_CHOICES) + " hoặc --profile hồ sơ cột JSON."
    )

    def add_arguments(self, parser):
        parser.add_argument("connection_id", help="Mã kết nối ngân hàng (cn…).")
        parser.add_argument("file", help="Tệp sao kê .csv hoặc .xlsx.")
        parser.add_argument(
            "--bank",
            choices=BANK_CHOICES,
            default="auto",
            help="Mẫu sao kê của ngân hàng; auto = tự nhận diện theo dòng tiêu đề.",
        )
        parser.add_argument("--profile", help="Hồ sơ cột JSON cho ngân hàng khác.")
        parser.add_argument("--dry-run", action="store_true", help="Chỉ xem trước, không ghi.")

    def handle(self, connection_id, file, bank, profile, dry_run, **options):
        connection = (
            BankConnection.objects.select_related("account").filter(pk=connection_id).first()
        )
        if connection is None:
            raise CommandError(f"Không tìm thấy kết nối ngân hàng “{connection_id}”.")
        bars = {
            "insert": ProgressBar("Ghi giao dịch", stream=self.stderr),
            "reconcile": ProgressBar("Đối soát", stream=self.stderr),
        }
        try:
            chosen = load_profile(profile) if profile else None
            report = statement_import(
                connection=connection,
                path=file,
                bank=bank,
                profile=chosen,
                dry_run=dry_run,
                progress=lambda phase, done, total: bars[phase](done, total),
            )
        except FileNotFoundError:
            raise CommandError(f"Không tìm thấy tệp “{file}”.") from None
        except StatementRejected as error:
            for line in error.report.errors:
                self.stderr.write(f"  {line}")
            if error.report.error_count > len(error.report.errors):
                hidden = error.report.error_count - len(error.report.errors)
                self.stderr.write(f"  … và {hidden} lỗi khác")
            raise CommandError(error.message) from None
        except DomainError as error:
            raise CommandError(error.message) from None
        self._print(report)

    def _print(self, report: StatementReport) -> None:
        out = self.stdout.write
        out(
            f"Sao kê {report.profile_name} · dòng tiêu đề {report.header_row} · "
            f"{report.lines} giao dịch · số dư đầu kỳ {_vnd(report.opening_balance_vnd)}"
        )
        for warning in report.warnings:
            out(self.style.WARNING(f"  Cảnh báo: {warning}"))
        if report.duplicates:
            out(f"Bỏ qua {len(report.duplicates)} giao dịch đã có:")
            for line in report.duplicates[:SHOWN_LINES]:
                out(f"  dòng {line.row}: {_vnd(line.amount_vnd)} — {line.duplicate_of}")
            if len(report.duplicates) > SHOWN_LINES:
                out(f"  … và {len(report.duplicates) - SHOWN_LINES} dòng khác")
        if report.dry_run:
            out(
                f"Sẽ tạo {len(report.to_create)} giao dịch (vào {_vnd(report.money_in_vnd)}, "
                f"ra {_vnd(report.money_out_vnd)}):"
            )
            for line in report.to_create[:SHOWN_LINES]:
                sign = "+" if line.direction == "in" else "−"
                out(
                    f"  dòng {line.row}: {line.bank_time:%d/%m/%Y} {sign}{_vnd(line.amount_vnd)} "
                    f"{line.content[:60]}"
                )
            if len(report.to_create) > SHOWN_LINES:
                out(f"  … và {len(report.to_create) - SHOWN_LINES} dòng khác")
            out(self.style.SUCCESS("Chạy thử: chưa ghi gì."))
            return
        matched = report.reconciled.get("matched", 0) + report.reconciled.get("partly", 0)
        out(
            self.style.SUCCESS(
                f"Đã tạo {report.created} giao dịch; đối soát: {matched} khớp, "
                f"{report.reconciled.get('unmatched', 0)} chờ xử lý, "
                f"{report.reconciled.get('ignored', 0)} tiền ra."
            )
        )
        if report.reconcile_failures:
            out(
                self.style.ERROR(
                    f"{report.reconcile_failures} giao dịch chưa đối soát được (xem nhật ký); "
                    "chạy lại lệnh để thử lại."
                )
            )
