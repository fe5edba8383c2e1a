"""payOS payment-link webhooks (webhooks.md §6). Pure: no Django.

The body is ``{"code", "desc", "success", "data": {...}, "signature"}``. Only
``data`` is signed (§6.2): its keys sorted, joined as ``k=v&...`` with **no**
URL-encoding, HMAC-SHA256 with the checksum key. The signature is computed over
the raw received ``data`` dict with all its keys, never over a model dump, so a
new field from payOS still verifies. The outer ``code``/``desc``/``success`` are
unsigned and ignored; ``parse`` refuses a transfer whose ``data.code`` is not
``"00"``.

The signature lives inside the body, so ``verify`` has to parse JSON before it
can authenticate: a body that is not JSON is refused with 400 ``malformed_json``
(§2 step 3; nothing of it is trusted), a JSON body without a usable signature
with 401. There is no timestamp, so replays cannot be detected here; the
(``paymentLinkId``, ``reference``) unique key makes them harmless.

``Transfer.provider_transaction_id`` is ``"<paymentLinkId>:<reference>"`` (§7:
one payment link can receive several transfers); ``provider_code`` is the
``orderCode``, which identifies our demand.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .base import (
    Transfer,
    VerifyResult,
    amount,
    check_now,
    check_secret,
    constant_time_equal,
    dump_json,
    format_local_time,
    hmac_sha256_hex,
    identifier,
    load_json,
    load_json_object,
    local_time,
    malformed,
    numeric_id,
    optional_text,
    require,
    single,
    text,
    text_identifier,
    unauthenticated,
)

NAME = "payos"
# §6.3: the confirm-webhook test call carries this description.
TEST_DESCRIPTION = "Ma giao dich thu nghiem"
SUCCESS_CODE = "00"

# §8.2 and §10: "" or null in the optional fields, and an unknown extra field in
# ``data``, must all verify.
_NULLABLE = (
    "counterAccountBankId",
    "counterAccountBankName",
    "counterAccountName",
    "counterAccountNumber",
    "virtualAccountName",
    "virtualAccountNumber",
)
VARIANTS: dict[str, dict[str, Any]] = {
    "empty-strings": {},
    "nulls": {"empty_as_null": True},
    "extra-field": {"extra_data": {"futureField": "giá trị mới"}},
}

_CARRIED = frozenset(
    {
        "provider_transaction_id",
        "direction",
        "amount_vnd",
        "content",
        "bank_reference",
        "counter_account",
        "counter_name",
        "counter_bank",
        "account_number",
        "sub_account",
        "bank_time",
        "provider_code",
        "is_test",
    }
)


# --- the signed string (§6.2) --------------------------------------------------------------


def _value_text(value: Any) -> str:
    if value is None or value in ("null", "undefined"):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        items = [dict(sorted(item.items())) if isinstance(item, dict) else item for item in value]
        return json.dumps(items, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def data_to_sign(data: Mapping[str, Any]) -> str:
    """``k1=v1&k2=v2...`` over the sorted keys of ``data``, without URL-encoding."""
    return "&".join(f"{key}={_value_text(data[key])}" for key in sorted(data))


def signature_for_data(data: Mapping[str, Any], checksum_key: str) -> str:
    return hmac_sha256_hex(checksum_key, data_to_sign(data).encode("utf-8"))


# --- verify ---------------------------------------------------------------------------------


def verify(
    raw_body: bytes, headers: Mapping[str, str], secret: str, *, now: datetime
) -> VerifyResult:
    """Authenticate a delivery by its in-body signature; ``WebhookRejected`` otherwise.

    ``headers`` and ``now`` are unused: payOS sends neither a signature header nor
    a timestamp. They are accepted for the common interface.
    """
    check_secret(secret)
    check_now(now)
    body = load_json(raw_body)
    if not isinstance(body, dict):
        raise malformed("not_an_object")
    signature = body.get("signature")
    if signature is None or signature == "":
        raise unauthenticated("missing_signature")
    data = body.get("data")
    if not isinstance(signature, str) or not isinstance(data, dict):
        raise unauthenticated("bad_signature")
    if not constant_time_equal(signature_for_data(data, secret), signature.strip().lower()):
        raise unauthenticated("bad_signature")
    return VerifyResult(NAME, "payos-checksum")


def looks_like_test_call(raw_body: bytes) -> bool:
    """True when the body is payOS's confirm-webhook test call (§6.3).

    Whether that call is signed is not documented [C]. A view may use this to
    answer 2xx to an *unverified* test call so the webhook can be registered, but
    must never process it: nothing here is authenticated.
    """
    try:
        data = load_json_object(raw_body).get("data")
    except Exception:
        return False
    return isinstance(data, dict) and data.get("description") == TEST_DESCRIPTION


# --- parse ----------------------------------------------------------------------------------


def parse(raw_body: bytes) -> list[Transfer]:
    """The transfer of an authenticated delivery.

    400 ``unsuccessful_transfer`` when ``data.code`` is not "00" (§6.2 step 1,
    §8.2): the outer ``success`` is unsigned and never trusted.
    """
    body = load_json_object(raw_body)
    data = require(body, "data")
    if not isinstance(data, dict):
        raise malformed("invalid_field:data")
    if require(data, "code") != SUCCESS_CODE:
        raise malformed("unsuccessful_transfer")
    if data.get("currency") not in (None, "", "VND"):
        raise malformed("unsupported_currency")
    payment_link_id = text_identifier(data, "paymentLinkId")
    reference = text_identifier(data, "reference")
    content = text(data, "description")
    return [
        Transfer(
            provider_transaction_id=f"{payment_link_id}:{reference}",
            # payOS only reports money paid into a payment link.
            direction="in",
            amount_vnd=amount(data, "amount"),
            content=content,
            bank_reference=reference,
            counter_account=optional_text(data, "counterAccountNumber"),
            counter_name=optional_text(data, "counterAccountName"),
            # The BIN (counterAccountBankId) stays in ``raw``.
            counter_bank=optional_text(data, "counterAccountBankName"),
            account_number=optional_text(data, "accountNumber"),
            sub_account=optional_text(data, "virtualAccountNumber"),
            bank_time=local_time(data, "transactionDateTime"),
            provider_code=identifier(data, "orderCode"),
            is_test=content == TEST_DESCRIPTION,
            raw=data,
        )
    ]


def success_response() -> tuple[int, dict[str, Any]]:
    """§6.1: HTTP 200 with ``{"success": true}``."""
    return 200, {"success": True}


# --- signing and building --------------------------------------------------------------------


def sign(raw_body: bytes, secret: str, *, now: datetime) -> dict[str, str]:
    """payOS sends no authentication header: its signature is inside the body
    (use ``signature_for_data`` or ``build_delivery``). Returns the content type only."""
    check_secret(secret)
    return {"Content-Type": "application/json"}


def build_delivery(
    transfers: list[Transfer],
    secret: str,
    *,
    now: datetime,
    empty_as_null: bool = False,
    extra_data: Mapping[str, Any] | None = None,
) -> tuple[bytes, dict[str, str]]:
    """One signed payOS delivery in the layout of the documentation sample (§6.1).

    ``empty_as_null`` writes null instead of "" in the optional account fields;
    ``extra_data`` adds fields payOS might introduce later. Both must still verify.
    """
    check_secret(secret)
    transfer = single(transfers, NAME)
    if transfer.direction != "in":
        raise ValueError("payOS only reports incoming payments")
    payment_link_id, sep, reference = transfer.provider_transaction_id.partition(":")
    if not sep or not payment_link_id or not reference:
        raise ValueError("a payOS transaction id is '<paymentLinkId>:<reference>'")
    if transfer.bank_reference not in (None, reference):
        raise ValueError("a payOS bank_reference is the reference in the transaction id")
    if transfer.is_test != (transfer.content == TEST_DESCRIPTION):
        raise ValueError(f"a payOS test call is exactly the description {TEST_DESCRIPTION!r}")
    if transfer.provider_code is None:
        raise ValueError("a payOS transfer needs provider_code (the orderCode)")
    data: dict[str, Any] = {
        "orderCode": numeric_id(transfer.provider_code, "payOS orderCode"),
        "amount": transfer.amount_vnd,
        "description": transfer.content,
        "accountNumber": transfer.account_number or "",
        "reference": reference,
        "transactionDateTime": format_local_time(transfer.bank_time),
        "currency": "VND",
        "paymentLinkId": payment_link_id,
        "code": SUCCESS_CODE,
        "desc": "Thành công",
        "counterAccountBankId": "",
        "counterAccountBankName": transfer.counter_bank or "",
        "counterAccountName": transfer.counter_name or "",
        "counterAccountNumber": transfer.counter_account or "",
        "virtualAccountName": "",
        "virtualAccountNumber": transfer.sub_account or "",
    }
    if empty_as_null:
        data.update({key: None for key in _NULLABLE if data[key] == ""})
    if extra_data:
        data.update(extra_data)
    body = {
        "code": SUCCESS_CODE,
        "desc": "success",
        "success": True,
        "data": data,
        "signature": signature_for_data(data, secret),
    }
    raw_body = dump_json(body)
    return raw_body, sign(raw_body, secret, now=now)


def carried_fields(**options: Any) -> frozenset[str]:
    """The ``Transfer`` fields a payOS delivery carries (the others parse as None)."""
    return _CARRIED
