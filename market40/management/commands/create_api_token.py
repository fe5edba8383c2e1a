"""``manage.py create_api_token USERNAME [--name NAME]``: issue a bearer token for the
JSON API. The token is printed once; only its SHA-256 is stored, so it cannot be shown
again. Revoke a token by deleting its row (admin → Khóa API)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from market40.models import ApiToken


class Command(BaseCommand):
    help = _("Tạo khóa API (Bearer) cho một người dùng; khóa chỉ được in ra một lần.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("username", help=_("tên đăng nhập của người dùng"))
        parser.add_argument("--name", default="", help=_("tên gợi nhớ của khóa, ví dụ “máy POS”"))

    def handle(self, *args, username: str, name: str, **options) -> None:
        User = get_user_model()
        user = User.objects.filter(**{User.USERNAME_FIELD: username}).first()
        if user is None:
            raise CommandError(_("Không có người dùng “%(username)s”.") % {"username": username})
        if not user.is_active:
            raise CommandError(
                _("Người dùng “%(username)s” đã bị khóa; không thể tạo khóa API.")
                % {"username": username}
            )
        _row, token = ApiToken.issue(user, name=name)
        # The token alone on its own line, so a script can take it with `grep ^m40_`.
        self.stdout.write(token)
        self.stdout.write(
            _(
                "Khóa API của %(username)s chỉ hiển thị MỘT LẦN này: hãy lưu lại ngay. Hệ thống "
                "chỉ lưu mã băm nên không thể xem lại; nếu mất, hãy tạo khóa mới và xóa khóa cũ. "
                "Dùng: Authorization: Bearer <khóa>"
            )
            % {"username": user.get_username()}
        )
