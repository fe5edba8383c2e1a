"""Validators for Vietnamese identifiers, with Vietnamese messages naming the field."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

TAX_CODE_RE = re.compile(r"^\d{10}(-\d{3})?$")
CITIZEN_ID_RE = re.compile(r"^\d{12}$")
# Vietnamese mobile numbers after the 2018 renumbering: 03x, 05x, 07x, 08x, 09x + 8 digits.
MOBILE_RE = re.compile(r"^0[35789]\d{8}$")
MARKET_CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{1,19}$")
STALL_CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9._/-]{0,19}$")
PERIOD_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def validate_tax_code(value: str) -> None:
    if not TAX_CODE_RE.match(value or ""):
        raise ValidationError(
            _(
                "Mã số thuế (MST) phải gồm 10 chữ số, hoặc 10 chữ số, gạch ngang, 3 chữ số "
                "(đơn vị phụ thuộc); nhận được “%(value)s”."
            ),
            code="invalid_tax_code",
            params={"value": value},
        )


def validate_citizen_id(value: str) -> None:
    if not CITIZEN_ID_RE.match(value or ""):
        raise ValidationError(
            _("Số CCCD phải gồm đúng 12 chữ số; nhận được “%(value)s”."),
            code="invalid_citizen_id",
            params={"value": value},
        )


def normalise_phone(value: str) -> str:
    """0xxxxxxxxx from the forms people type: spaces, dots, dashes, +84 or 84."""
    digits = re.sub(r"[\s.\-()]", "", value or "")
    if digits.startswith("+84"):
        digits = "0" + digits[3:]
    elif digits.startswith("84") and len(digits) == 11:
        digits = "0" + digits[2:]
    return digits


def validate_mobile(value: str) -> None:
    if not MOBILE_RE.match(normalise_phone(value)):
        raise ValidationError(
            _(
                "Số điện thoại di động không hợp lệ: “%(value)s” (cần 10 chữ số, "
                "bắt đầu bằng 03, 05, 07, 08 hoặc 09)."
            ),
            code="invalid_phone",
            params={"value": value},
        )


def validate_market_code(value: str) -> None:
    if not MARKET_CODE_RE.match(value or ""):
        raise ValidationError(
            _(
                "Mã chợ chỉ gồm chữ in hoa, chữ số, “-” hoặc “_”, dài 2–20 ký tự; "
                "nhận được “%(value)s”."
            ),
            code="invalid_market_code",
            params={"value": value},
        )


def validate_stall_code(value: str) -> None:
    if not STALL_CODE_RE.match(value or ""):
        raise ValidationError(
            _(
                "Mã sạp/ki-ốt chỉ gồm chữ in hoa, chữ số và . _ / -, tối đa 20 ký tự; "
                "nhận được “%(value)s”."
            ),
            code="invalid_stall_code",
            params={"value": value},
        )
