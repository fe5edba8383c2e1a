"""market40's own bank-simulator webhook format. Pure: no Django.

The in-house simulator mostly speaks the real providers' formats (see the other
modules and webhooks.md §10). This format is for everything else: it carries
every ``Transfer`` field, so scenarios can exercise the whole pipeline without
the gaps of a particular provider.

Request::

    POST /webhooks/simulator/<connection-id>/
    Content-Type: application/json
    X-Market40-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>

    {"version":1,"transfers":[{
        "provider_transaction_id":"SIM-000123", "direction":"in", "amount_vnd":150000,
        "content":"CHO12345674 PHI T05", "description":null, "bank_reference":"FT24...",
        "counter_account":"0123456789", "counter_name":"NGUYEN VAN A", "counter_bank":"Vietcombank",
        "account_number":"0011001234567", "sub_account":null,
        "bank_time":"2024-05-01T09:30:00+07:00", "running_balance_vnd":2150000,
        "provider_code":"CHO12345674", "is_test":false}]}

* The signature covers the exact raw bytes (as SePay's HMAC mode, §3.2, and
  Stripe), so there is no re-serialisation ambiguity; ``t`` must be within
  5 minutes of the receiver's clock.
* ``version`` is 1; any other value is refused (400 ``unsupported_version``).
* ``transfers`` is a batch of zero or more items (as Casso v1); item keys are the
  ``Transfer`` field names; ``bank_time`` is ISO 8601 **with** a UTC offset;
  amounts are positive integers in đồng and ``direction`` says in or out.
* Success response: 200 ``{"success": true}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .base import (
    VN_TZ,
    Transfer,
    VerifyResult,
    amount,
    check_fresh,
    check_now,
    check_secret,
    constant_time_equal,
    dump_json,
    hmac_sha256_hex,
    integer,
    load_json_object,
    malformed,
    normalise_headers,
    optional_integer,
    optional_text,
    parse_signature_header,
    parse_timestamp,
    require,
    text,
    text_identifier,
    unauthenticated,
    unix_seconds,
)

NAME = "simulator"
SIGNATURE_HEADER = "X-Market40-Signature"
FORMAT_VERSION = 1

VARIANTS: dict[str, dict[str, Any]] = {"v1": {}}

_CARRIED = frozenset(
    {
        "provider_transaction_id",
        "direction",
        "amount_vnd",
        "content",
        "description",
        "bank_reference",
        "counter_account",
        "counter_name",
        "counter_bank",
        "account_number",
        "sub_account",
        "bank_time",
        "running_balance_vnd",
        "provider_code",
        "is_test",
    }
)


def _signature(secret: str, timestamp: str, raw_body: bytes) -> str:
    return hmac_sha256_hex(secret, timestamp.encode("ascii") + b"." + raw_body)


def verify(
    raw_body: bytes, headers: Mapping[str, str], secret: str, *, now: datetime
) -> VerifyResult:
    """Authenticate a delivery; raises ``WebhookRejected`` (401) otherwise."""
    check_secret(secret)
    check_now(now)
    header = normalise_headers(headers).get(SIGNATURE_HEADER.lower())
    if not header:
        raise unauthenticated("missing_signature")
    parts = parse_signature_header(header)
    seconds = parse_timestamp(parts["t"])
    if not constant_time_equal(_signature(secret, parts["t"], raw_body), parts["v1"].lower()):
        raise unauthenticated("bad_signature")
    signed_at = check_fresh(seconds * 1000, now)
    return VerifyResult(NAME, "market40-v1", None, signed_at)


def parse(raw_body: bytes) -> list[Transfer]:
    """The transfers of an authenticated delivery; ``WebhookRejected`` (400) if malformed."""
    body = load_json_object(raw_body)
    if integer(body, "version") != FORMAT_VERSION:
        raise malformed("unsupported_version")
    items = require(body, "transfers")
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise malformed("invalid_field:transfers")
    return [_parse_item(item) for item in items]


def _parse_item(item: dict[str, Any]) -> Transfer:
    direction = require(item, "direction")
    if direction not in ("in", "out"):
        raise malformed("invalid_field:direction")
    is_test = item.get("is_test", False)
    if not isinstance(is_test, bool):
        raise malformed("invalid_field:is_test")
    return Transfer(
        provider_transaction_id=text_identifier(item, "provider_transaction_id"),
        direction=direction,
        amount_vnd=amount(item, "amount_vnd"),
        content=text(item, "content"),
        description=optional_text(item, "description"),
        bank_reference=optional_text(item, "bank_reference"),
        counter_account=optional_text(item, "counter_account"),
        counter_name=optional_text(item, "counter_name"),
        counter_bank=optional_text(item, "counter_bank"),
        account_number=optional_text(item, "account_number"),
        sub_account=optional_text(item, "sub_account"),
        bank_time=_aware_time(item, "bank_time"),
        running_balance_vnd=optional_integer(item, "running_balance_vnd"),
        provider_code=optional_text(item, "provider_code"),
        is_test=is_test,
        raw=item,
    )


def _aware_time(item: dict[str, Any], key: str) -> datetime:
    value = require(item, key)
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None or moment.utcoffset() is None:
        raise malformed(f"invalid_field:{key}")
    return moment.astimezone(VN_TZ)


def success_response() -> tuple[int, dict[str, Any]]:
    return 200, {"success": True}


def sign(raw_body: bytes, secret: str, *, now: datetime) -> dict[str, str]:
    """The headers the simulator sends with ``raw_body``."""
    check_secret(secret)
    timestamp = str(unix_seconds(now))
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: f"t={timestamp},v1={_signature(secret, timestamp, raw_body)}",
    }


def build_delivery(
    transfers: list[Transfer], secret: str, *, now: datetime
) -> tuple[bytes, dict[str, str]]:
    """One signed simulator delivery carrying every field of every transfer."""
    items = [
        {
            "provider_transaction_id": transfer.provider_transaction_id,
            "direction": transfer.direction,
            "amount_vnd": transfer.amount_vnd,
            "content": transfer.content,
            "description": transfer.description,
            "bank_reference": transfer.bank_reference,
            "counter_account": transfer.counter_account,
            "counter_name": transfer.counter_name,
            "counter_bank": transfer.counter_bank,
            "account_number": transfer.account_number,
            "sub_account": transfer.sub_account,
            "bank_time": transfer.bank_time.astimezone(VN_TZ).isoformat(),
            "running_balance_vnd": transfer.running_balance_vnd,
            "provider_code": transfer.provider_code,
            "is_test": transfer.is_test,
        }
        for transfer in transfers
    ]
    raw_body = dump_json({"version": FORMAT_VERSION, "transfers": items})
    return raw_body, sign(raw_body, secret, now=now)


def carried_fields(**options: Any) -> frozenset[str]:
    return _CARRIED
