"""Django-side VietQR: payloads for demands and stalls from the market's receiving
account. The pure encoder/decoder lives in ``market40.vietqr``."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

ACCOUNT_RE = re.compile(r"^[A-Za-z0-9]{1,19}$")


def validate_account_number(value: str) -> None:
    """Letters or digits, at most 19 (vietqr.md §4): no spaces, dots or dashes."""
    if not ACCOUNT_RE.match(value or ""):
        raise ValidationError(
            {
                "account_number": _(
                    "Số tài khoản chỉ gồm chữ và số, không dấu cách, tối đa 19 ký tự; "
                    "nhận được “%(value)s”."
                )
                % {"value": value}
            },
            code="invalid_account",
        )
