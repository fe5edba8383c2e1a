"""How the JSON API knows who is calling.

Two ways in, tried in this order:

* ``Authorization: Bearer m40_…`` — an ``ApiToken``; only its SHA-256 is stored, so the
  lookup is by hash. A request that sends a bearer token which does not match (wrong,
  deleted = revoked, or its user deactivated) is refused with 401 at once, even if it
  also carries a session cookie: a script with a stale token should fail loudly, not
  quietly act as whoever is logged in in the same browser.
* The Django session (the manager pages' login), with Django's CSRF check on unsafe
  methods. Unlike ninja's ``SessionAuth`` the CSRF check runs only once we know a
  session user exists, so an anonymous POST gets 401 (log in) rather than 403 (CSRF).

Either way the handler finds the user in ``request.auth`` (and ``request.user``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from ninja.errors import AuthenticationError
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from market40.errors import Forbidden
from market40.models import ApiToken

# Writing last_used_at on every request would turn each read into a write; once a
# minute is precise enough to tell a live token from an abandoned one.
TOUCH_INTERVAL = timedelta(minutes=1)


class InvalidToken(AuthenticationError):
    """A bearer token was sent but matches no active token."""

    def __init__(self) -> None:
        super().__init__(
            401, _("Khóa API không hợp lệ hoặc đã bị thu hồi (Authorization: Bearer …).")
        )


def touch_token(token: ApiToken, *, now=None) -> bool:
    """Record use at most once per ``TOUCH_INTERVAL``. A conditional update, so many
    concurrent requests with one token write the row once, without a lock."""
    now = now or timezone.now()
    if token.last_used_at and now - token.last_used_at < TOUCH_INTERVAL:
        return False
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - TOUCH_INTERVAL)
    updated = ApiToken.objects.filter(stale, pk=token.pk).update(last_used_at=now)
    if updated:
        token.last_used_at = now
    return updated == 1


class BearerTokenAuth(HttpBearer):
    def __call__(self, request: HttpRequest) -> Any | None:
        header = request.headers.get(self.header, "")
        scheme, _sep, token = header.partition(" ")
        if scheme.lower() != self.openapi_scheme:
            return None  # no bearer token: let the session have a go
        user = self.authenticate(request, token.strip())
        if user is None:
            raise InvalidToken()
        return user

    def authenticate(self, request: HttpRequest, token: str) -> Any | None:
        if not token:
            return None
        # Looking up by the hash leaks nothing through timing: an attacker who could
        # time the index lookup would learn about SHA-256 preimages, not the token.
        api_token = (
            ApiToken.objects.select_related("user").filter(key_hash=ApiToken.hash(token)).first()
        )
        if api_token is None or not api_token.user.is_active:
            return None
        touch_token(api_token)
        request.user = api_token.user
        request.api_token = api_token  # type: ignore[attr-defined]
        return api_token.user


class SessionCsrfAuth(APIKeyCookie):
    """The logged-in Django session, with the CSRF check on unsafe methods."""

    param_name: str = settings.SESSION_COOKIE_NAME

    def _get_key(self, request: HttpRequest) -> str | None:
        # ninja's APIKeyCookie checks CSRF here, before knowing whether anyone is
        # logged in; we do it in authenticate() instead (see the module docstring).
        return request.COOKIES.get(self.param_name)

    def authenticate(self, request: HttpRequest, key: str | None) -> Any | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        exempt = not self.csrf or getattr(request, "_ninja_csrf_exempt", False)
        if not exempt and check_csrf(request) is not None:
            raise Forbidden(
                _(
                    "Kiểm tra CSRF thất bại: khi dùng phiên đăng nhập, hãy gửi kèm "
                    "header X-CSRFToken lấy từ cookie csrftoken (hoặc dùng khóa API)."
                ),
                extra={"reason": "csrf"},
            )
        return user
