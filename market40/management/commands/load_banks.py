from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from market40.banks import BankListError, load_bank_list


class Command(BaseCommand):
    help = "Nạp danh sách ngân hàng NAPAS (định dạng vietqr.io /v2/banks) vào cơ sở dữ liệu."

    def add_arguments(self, parser):
        parser.add_argument("path", nargs="?", default=str(settings.BANK_LIST_PATH))

    def handle(self, path, **options):
        try:
            count = load_bank_list(path)
        except BankListError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(self.style.SUCCESS(f"Đã nạp {count} ngân hàng từ {path}."))
