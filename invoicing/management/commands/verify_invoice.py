"""``manage.py verify_invoice FILE...``: signatures and arithmetic of any invoice XML."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from invoicing.signing import MAX_XML_BYTES, VerificationError, verify_invoice
from invoicing.xml import InvoiceXmlError, parse_invoice_summary, safe_parse

LOCATIONS = {
    "NBan": "người bán",
    "NMua": "người mua",
    "CQT": "cơ quan thuế",
    "other": "khác",
}


class Command(BaseCommand):
    help = (
        "Kiểm tra hóa đơn điện tử XML (HDon, hoặc TDiep chứa HDon): từng chữ ký (người bán, "
        "cơ quan thuế; SHA-1 hoặc SHA-256) hợp lệ hay lý do cụ thể, và các đẳng thức tổng "
        "tiền. Mã thoát khác 0 nếu có tệp không đạt. Từ chối XML có DOCTYPE/ENTITY (XXE)."
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE")

    def handle(self, files, **options):
        failed = [name for name in files if not self.check_file(Path(name))]
        total = len(files)
        if failed:
            raise CommandError(
                f"{len(failed)}/{total} tệp KHÔNG đạt: {', '.join(failed)}", returncode=1
            )
        self.stdout.write(self.style.SUCCESS(f"{total}/{total} tệp đạt."))

    def check_file(self, path: Path) -> bool:
        self.stdout.write(f"== {path}")
        try:
            size = path.stat().st_size
            if size > MAX_XML_BYTES:
                self.stdout.write(
                    self.style.ERROR(
                        f"  Từ chối XML: {size} byte vượt giới hạn {MAX_XML_BYTES} byte "
                        "(không đọc tệp)"
                    )
                )
                return False
            data = path.read_bytes()
            # The reader first: its refusals (XXE, billion laughs, size) are worded in Vietnamese.
            safe_parse(data, max_bytes=MAX_XML_BYTES)
            report = verify_invoice(data)
        except OSError as error:
            self.stdout.write(self.style.ERROR(f"  Không đọc được tệp: {error}"))
            return False
        except InvoiceXmlError as error:
            self.stdout.write(self.style.ERROR(f"  {error.message_vi}"))
            return False
        except VerificationError as error:
            self.stdout.write(self.style.ERROR(f"  Từ chối: {error}"))
            return False

        ok = True
        if not report.signatures:
            self.stdout.write(self.style.ERROR("  Không có chữ ký nào."))
            ok = False
        for number, signature in enumerate(report.signatures, 1):
            where = LOCATIONS.get(signature.location, signature.location)
            when = signature.signing_time
            head = (
                f"  Chữ ký {number} ({where}, {signature.algorithm or '?'}, "
                f"{signature.signer_subject or 'không rõ chủ thể'}"
                + (f", ký lúc {when:%Y-%m-%dT%H:%M:%S}" if when else "")
                + "): "
            )
            if signature.valid:
                self.stdout.write(head + self.style.SUCCESS("hợp lệ"))
            else:
                ok = False
                reasons = "; ".join(signature.errors)
                self.stdout.write(head + self.style.ERROR(f"KHÔNG hợp lệ — {reasons}"))
            for warning in signature.warnings:
                self.stdout.write(self.style.WARNING(f"    lưu ý: {warning}"))

        try:
            summary = parse_invoice_summary(data)
        except InvoiceXmlError as error:
            self.stdout.write(
                self.style.ERROR(f"  Không đọc được nội dung hóa đơn: {error.message_vi}")
            )
            return False
        self.stdout.write(
            f"  Hóa đơn {summary['form']}{summary['serial']} số {summary['number']} ngày "
            f"{summary['issue_date']:%d/%m/%Y}, người bán MST {summary['seller_tax_code']}, "
            f"tổng thanh toán {summary['total_payable']}"
        )
        ok = self.report_identities(summary) and ok
        verdict = self.style.SUCCESS("  → đạt") if ok else self.style.ERROR("  → KHÔNG đạt")
        self.stdout.write(verdict)
        return ok

    def report_identities(self, summary) -> bool:
        problems = summary["identity_problems"]
        if summary["total_net"] is None and not summary["groups"]:
            names = ["TgTTTBSo = Σ ThTien (hóa đơn bán hàng)"]
        else:
            names = [
                "TgTCThue = Σ ThTien",
                "TgTThue = Σ LTSuat/TThue",
                "TgTTTBSo = TgTCThue + TgTThue",
            ]
        if problems:
            for problem in problems:
                self.stdout.write(self.style.ERROR(f"  Đẳng thức sai: {problem}"))
        else:
            for name in names:
                self.stdout.write(f"  {name}: " + self.style.SUCCESS("đúng"))
        for problem in summary["rate_problems"]:
            self.stdout.write(self.style.WARNING(f"  lưu ý thuế suất: {problem}"))
        words_ok = summary["words_match"]
        if words_ok is None:
            self.stdout.write(self.style.WARNING("  TgTTTBChu: không kiểm tra được"))
        elif words_ok:
            self.stdout.write("  TgTTTBChu khớp TgTTTBSo: " + self.style.SUCCESS("đúng"))
        else:
            self.stdout.write(
                self.style.ERROR(
                    f"  TgTTTBChu “{summary['amount_in_words']}” không đọc đúng "
                    f"{summary['total_payable']}"
                )
            )
        return not problems and words_ok is not False
