import os
from pathlib import Path

from cryptography import x509
from django.core.management.base import BaseCommand, CommandError

from invoicing import conf
from invoicing.certificates import clear_cache
from invoicing.models import InvoiceSettings
from invoicing.signing import VIETNAM_TZ, format_subject, make_test_certificate
from market40.commands import market_argument


class Command(BaseCommand):
    help = (
        "Tạo chứng thư số tự ký RSA-2048 để THỬ NGHIỆM (UID=MST:<MST của chợ>) và ghi đường "
        "dẫn vào cấu hình hóa đơn của chợ. Không dùng để xuất hóa đơn thật."
    )

    def add_arguments(self, parser):
        parser.add_argument("market_code")
        parser.add_argument(
            "--out", help="Tệp PKCS#12 (.p12); mặc định <INVOICING_CERT_DIR>/<MÃ CHỢ>-test.p12."
        )
        parser.add_argument(
            "--password",
            help=(
                "Mật khẩu mã hóa tệp .p12. Mật khẩu không được lưu: đặt nó vào biến môi trường "
                "được in ra (hoặc biến ..._FILE) cho web và worker."
            ),
        )
        parser.add_argument(
            "--password-ref",
            help="Tham chiếu mật khẩu (env:TEN_BIEN hoặc file:/duong/dan); mặc định "
            "env:INVOICING_CERT_PASSWORD_<MÃ CHỢ> khi có --password.",
        )
        parser.add_argument("--days", type=int, default=365, help="Số ngày hiệu lực (365).")
        parser.add_argument("--force", action="store_true", help="Ghi đè tệp đã có.")

    def handle(self, market_code, out, password, password_ref, days, force, **options):
        market = market_argument(market_code)
        if days < 1:
            raise CommandError("--days phải lớn hơn 0.")
        path = Path(out) if out else conf.certificate_dir() / f"{market.code}-test.p12"
        pem_path = path.with_suffix(".pem")
        if path.exists() and not force:
            raise CommandError(f"Tệp {path} đã có; dùng --force để ghi đè.")
        reference = ""
        if password:
            reference = password_ref or conf.default_password_reference(market.code)
            try:
                conf.validate_password_reference(reference)
            except conf.PasswordReferenceError as error:
                raise CommandError(str(error)) from None
        elif password_ref:
            raise CommandError("--password-ref chỉ dùng cùng --password.")

        p12, pem = make_test_certificate(
            tax_code=market.tax_code,
            common_name=market.name,
            days=days,
            password=password.encode() if password else None,
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        # The private key is in this file: readable by the owner only.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(p12)
        pem_path.write_bytes(pem)

        settings, created = InvoiceSettings.objects.get_or_create(
            market=market,
            defaults={"provider_tax_code": conf.default_provider_tax_code(market.tax_code)},
        )
        settings.certificate_path = str(path.resolve())
        settings.certificate_password_ref = reference
        settings.save(update_fields=["certificate_path", "certificate_password_ref", "updated_at"])
        clear_cache()

        certificate = x509.load_pem_x509_certificate(pem)
        valid_until = certificate.not_valid_after_utc.astimezone(VIETNAM_TZ)
        self.stdout.write(
            self.style.SUCCESS(f"Đã tạo chứng thư số thử nghiệm cho chợ {market.code}: {path}")
        )
        self.stdout.write(f"  Chủ thể: {format_subject(certificate.subject)}")
        self.stdout.write(f"  Hiệu lực đến: {valid_until:%H:%M %d/%m/%Y} (UTC+7)")
        self.stdout.write(f"  Chứng thư (PEM, để kiểm tra bằng xmlsec1): {pem_path}")
        if created:
            self.stdout.write(
                f"  Đã tạo cấu hình hóa đơn: {settings.get_form_display()}, ký hiệu "
                f"{settings.serial_scheme}, MSTTCGP {settings.provider_tax_code}."
            )
        if reference.startswith("env:"):
            name = reference[4:]
            self.stdout.write(
                self.style.WARNING(
                    f"  Mật khẩu không được lưu. Đặt {name}=<mật khẩu> (hoặc {name}_FILE=<tệp>) "
                    "trong môi trường của web và worker."
                )
            )
