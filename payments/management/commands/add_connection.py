from django.core.management.base import BaseCommand, CommandError

from market40.commands import market_argument
from market40.errors import DomainError
from market40.models import ReceivingAccount
from payments.models import Provider
from payments.services import connection_create


class Command(BaseCommand):
    help = (
        "Tạo kết nối ngân hàng cho một chợ: in mã kết nối, đường dẫn webhook và khóa bí mật "
        "(khi tự sinh). Nhà cung cấp: " + ", ".join(Provider.values)
    )

    def add_arguments(self, parser):
        parser.add_argument("market_code")
        parser.add_argument("provider", help=", ".join(Provider.values))
        parser.add_argument(
            "--secret", help="Khóa bí mật do nhà cung cấp cấp; bỏ trống để tự sinh."
        )
        parser.add_argument("--account", help="BIN:SỐ_TÀI_KHOẢN; mặc định tài khoản chính của chợ.")
        parser.add_argument("--mode", choices=["hmac", "apikey"], help="SePay: cách xác thực.")
        parser.add_argument(
            "--casso-version", choices=["v2", "v1"], help="Casso: phiên bản webhook."
        )

    def handle(self, market_code, provider, secret, account, mode, casso_version, **options):
        market = market_argument(market_code)
        receiving = None
        if account:
            bin_, _sep, number = account.partition(":")
            receiving = ReceivingAccount.objects.filter(
                market=market, bank_id=bin_, account_number=number
            ).first()
            if receiving is None:
                raise CommandError(
                    f"Chợ {market.code} không có tài khoản {account} (dạng BIN:SỐ_TÀI_KHOẢN)."
                )
        opts = {}
        if mode:
            opts["mode"] = mode
        if casso_version:
            opts["version"] = casso_version
        try:
            connection, value, generated = connection_create(
                market=market, provider=provider, account=receiving, secret=secret, options=opts
            )
        except DomainError as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"id: {connection.id}")
        self.stdout.write(f"webhook: {connection.webhook_path}")
        if generated:
            self.stdout.write(f"secret: {value}")
            self.stdout.write("(Khóa bí mật chỉ hiện một lần; hãy lưu lại ngay.)")
