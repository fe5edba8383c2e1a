"""Django-side VietQR: the payloads of demands and stalls, and their images.

The pure codec lives in ``market40.vietqr``; this module picks the receiving account,
checks the BIN against the Bank table (the NAPAS list, never a prefix test), and keeps
rendered images in the cache keyed by payload, so a repeated request renders nothing.
"""

from __future__ import annotations

import hashlib

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from market40 import qrimage, vietqr
from market40.errors import DomainError, InvalidInput
from market40.models import Bank, FeeDemand, Market, ReceivingAccount, Stall

IMAGE_CACHE_SECONDS = 7 * 24 * 3600
CONTENT_TYPES = {"png": "image/png", "svg": "image/svg+xml"}


class NoReceivingAccount(DomainError):
    code = "no_receiving_account"
    status = 409


def validate_account_number(value: str) -> None:
    """Letters or digits, at most 19 (vietqr.md §4): no spaces, dots or dashes."""
    if not (value and len(value) <= 19 and value.isascii() and value.isalnum()):
        raise ValidationError(
            {
                "account_number": gettext_lazy(
                    "Số tài khoản chỉ gồm chữ và số, không dấu cách, tối đa 19 ký tự; "
                    "nhận được “%(value)s”."
                )
                % {"value": value}
            },
            code="invalid_account",
        )


def receiving_account(market: Market) -> ReceivingAccount:
    account = market.default_account
    if account is None:
        raise NoReceivingAccount(
            _("Chợ %(market)s chưa cấu hình tài khoản nhận tiền.") % {"market": market.code}
        )
    return account


def _payload(account: ReceivingAccount, amount_vnd: int | None, code: str) -> str:
    try:
        return vietqr.build_payment_qr(
            bin=account.bank_id,
            account=account.account_number,
            amount_vnd=amount_vnd,
            purpose=code,
            bank_bins=_known_bins(),
        )
    except vietqr.VietQRError as error:
        raise InvalidInput(error.message_vi, code=f"vietqr_{error.code}") from None


def _known_bins() -> frozenset[str]:
    bins = cache.get("market40:bank-bins")
    if bins is None:
        bins = frozenset(Bank.objects.values_list("bin", flat=True))
        cache.set("market40:bank-bins", bins, 300)
    return bins


def demand_payload(demand: FeeDemand, account: ReceivingAccount | None = None) -> str | None:
    """The dynamic QR of a demand: amount = what is still outstanding, purpose = its
    payment code and nothing else. None when nothing is left to pay."""
    outstanding = demand.outstanding_vnd
    if outstanding <= 0:
        return None
    return _payload(account or receiving_account(demand.market), outstanding, demand.payment_code)


def stall_payload(stall: Stall, account: ReceivingAccount | None = None) -> str:
    """The static placard QR of a stall: no amount, purpose = the stall's own code."""
    return _payload(account or receiving_account(stall.market), None, stall.payment_code)


def payload_version(payload: str) -> str:
    return hashlib.sha256(payload.encode("ascii")).hexdigest()[:16]


def render_cached(payload: str, fmt: str) -> bytes:
    key = f"market40:qr:{fmt}:{payload_version(payload)}"
    body = cache.get(key)
    if body is None:
        body = qrimage.render_png(payload) if fmt == "png" else qrimage.render_svg(payload)
        cache.set(key, body, IMAGE_CACHE_SECONDS)
    return body


def decode_for_display(payload: str) -> dict:
    """Decoded fields for an accountant who pasted a payload; errors say what is wrong."""
    try:
        decoded = vietqr.decode(payload)
    except vietqr.VietQRError as error:
        raise InvalidInput(
            error.message_vi,
            code=f"vietqr_{error.code}",
            extra={"tag": error.tag, "english": str(error)},
        ) from None
    fields = decoded.to_dict()
    bank = Bank.objects.filter(bin=decoded.bin).first()
    fields["bank_name"] = bank.short_name if bank else None
    fields["amount_vnd"] = decoded.amount_vnd
    fields["purpose"] = decoded.purpose
    return fields


def share(demand: FeeDemand) -> dict:
    """What a manager needs to send a demand's pay link: the link, the QR image, and a
    short Vietnamese text ready for SMS or Zalo."""
    from urllib.parse import quote

    from django.conf import settings
    from django.urls import reverse

    from market40.formatting import vnd

    pay_url = settings.PUBLIC_BASE_URL + reverse("pay-page", kwargs={"token": demand.pay_token})
    text = (
        f"{demand.market.name}: phí sạp {demand.stall.code} kỳ {demand.period:%m/%Y} "
        f"còn {vnd(demand.outstanding_vnd)}, hạn {demand.due_date:%d/%m/%Y}. "
        f"Thanh toán: {pay_url} (nội dung CK: {demand.payment_code})"
    )
    context = {
        "pay_url": pay_url,
        "text": text,
        "qr_png": None,
        "error": None,
        "sms_href": f"sms:{demand.holder.phone}?&body={quote(text)}",
    }
    try:
        payload = demand_payload(demand)
    except DomainError as error:
        context["error"] = error.message
    else:
        if payload:
            version = payload_version(payload)
            context["qr_png"] = (
                reverse("pay-qr", kwargs={"token": demand.pay_token, "fmt": "png"})
                + f"?v={version}"
            )
    return context
