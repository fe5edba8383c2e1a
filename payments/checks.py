"""System checks of the payments app."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def check_connection_secrets_key(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    # Connection secrets are encrypted with a key derived from CONNECTION_SECRETS_KEY, or
    # from SECRET_KEY when it is unset: rotating SECRET_KEY would then make every stored
    # provider secret unreadable, and every webhook would be refused.
    if settings.CONNECTION_SECRETS_KEY:
        return []
    return [
        checks.Warning(
            "CONNECTION_SECRETS_KEY chưa được đặt: khóa bí mật của các kết nối ngân hàng đang "
            "được mã hóa bằng SECRET_KEY, đổi SECRET_KEY sẽ làm mọi webhook bị từ chối.",
            hint="Đặt CONNECTION_SECRETS_KEY (hoặc CONNECTION_SECRETS_KEY_FILE) riêng, "
            "không đổi theo SECRET_KEY.",
            id="payments.W001",
        )
    ]
