from django.core.management.base import BaseCommand, CommandError

from market40.demo import DEMO_USERS, seed_demo
from market40.models import Market


class Command(BaseCommand):
    help = "Tạo một chợ mẫu (khu, sạp, biểu giá, tiểu thương, hợp đồng, chỉ số) và tài khoản demo."

    def add_arguments(self, parser):
        parser.add_argument("--stalls", type=int, default=60, help="Số sạp (mặc định 60).")
        parser.add_argument("--market", default="CHOMAU", help="Mã chợ (mặc định CHOMAU).")
        parser.add_argument("--seed", type=int, default=2026)
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Không làm gì nếu cơ sở dữ liệu đã có chợ (dùng cho `make run`).",
        )

    def handle(self, stalls, market, seed, if_empty, **options):
        code = market.upper()
        if if_empty and Market.objects.exists():
            self.stdout.write("Cơ sở dữ liệu đã có dữ liệu; bỏ qua việc tạo chợ mẫu.")
            self._print_logins(created=False)
            return
        if Market.objects.filter(code=code).exists():
            raise CommandError(f"Chợ “{code}” đã tồn tại; dùng --market để đặt mã khác.")
        if stalls < 1 or stalls > 200_000:
            raise CommandError("--stalls phải từ 1 đến 200000.")
        result = seed_demo(code=code, stalls=stalls, seed=seed)
        self.stdout.write(
            self.style.SUCCESS(
                f"Đã tạo chợ mẫu {result.market.code}: {result.stalls} sạp, "
                f"{result.holders} tiểu thương, {result.banks} ngân hàng trong danh sách."
            )
        )
        self._print_logins(created=True)
        from market40.signals import demo_seeded

        for _receiver, lines in demo_seeded.send(sender=Market, market=result.market):
            for line in lines or []:
                self.stdout.write(line)

    def _print_logins(self, *, created: bool) -> None:
        self.stdout.write("Tài khoản demo (chỉ dùng để thử, hãy đổi mật khẩu khi triển khai):")
        for username, password, _role, label in DEMO_USERS:
            self.stdout.write(f"  {label:<20} {username} / {password}")
