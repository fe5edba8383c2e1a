"""SePay bank-account monitoring webhooks (webhooks.md §3). Pure: no Django.

One JSON object per delivery; the idempotency key is ``id``. Two authentication
modes (§3.2), chosen per connection:

* ``"hmac"``: ``X-SePay-Timestamp: <unix seconds>`` and
  ``X-SePay-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + raw body)>``,
  rejected when the timestamp is more than 5 minutes from now. The signed string
  comes from third-party receivers and is still to be confirmed against a real
  sandbox delivery [C];
* ``"apikey"``: ``Authorization: Apikey <key>``. The key does not cover the body,
  so this mode cannot detect tampering; prefer HMAC.

``verify(..., mode=None)`` picks the mode from the headers present; pass the
connection's configured mode to refuse the other one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from .base import (
    Transfer,
    VerifyResult,
    amount,
    check_fresh,
    check_now,
    check_secret,
    constant_time_equal,
    dump_json,
    format_local_time,
    hmac_sha256_hex,
    identifier,
    load_json_object,
    local_time,
    malformed,
    normalise_headers,
    numeric_id,
    optional_integer,
    optional_text,
    parse_timestamp,
    single,
    text,
    unauthenticated,
    unix_seconds,
)

NAME = "sepay"
SIGNATURE_HEADER = "X-SePay-Signature"
TIMESTAMP_HEADER = "X-SePay-Timestamp"
APIKEY_SCHEME = "Apikey"

Mode = Literal["hmac", "apikey"]

# Named delivery variants, for the simulator and the tests.
VARIANTS: dict[str, dict[str, Any]] = {"hmac": {"mode": "hmac"}, "apikey": {"mode": "apikey"}}

_CARRIED = frozenset(
    {
        "provider_transaction_id",
        "direction",
        "amount_vnd",
        "content",
        "description",
        "bank_reference",
        "account_number",
        "sub_account",
        "bank_time",
        "running_balance_vnd",
        "provider_code",
    }
)


def verify(
    raw_body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    now: datetime,
    mode: Mode | None = None,
) -> VerifyResult:
    """Authenticate a delivery; raises ``WebhookRejected`` (401) otherwise."""
    check_secret(secret)
    check_now(now)
    if mode not in (None, "hmac", "apikey"):
        raise ValueError(f"unknown SePay mode {mode!r}")
    found = normalise_headers(headers)
    if mode == "hmac" or (mode is None and SIGNATURE_HEADER.lower() in found):
        return _verify_hmac(raw_body, found, secret, now)
    if mode == "apikey" or (mode is None and "authorization" in found):
        return _verify_apikey(found, secret)
    raise unauthenticated("missing_signature")


def _verify_hmac(
    raw_body: bytes, found: dict[str, str], secret: str, now: datetime
) -> VerifyResult:
    signature = found.get(SIGNATURE_HEADER.lower())
    if not signature:
        raise unauthenticated("missing_signature")
    timestamp = found.get(TIMESTAMP_HEADER.lower())
    if timestamp is None:
        raise unauthenticated("missing_timestamp")
    seconds = parse_timestamp(timestamp)
    # The message uses the header's digits exactly as received (§3.2).
    signed = timestamp.strip().encode("ascii") + b"." + raw_body
    expected = "sha256=" + hmac_sha256_hex(secret, signed)
    if not constant_time_equal(expected, signature.strip().lower()):
        raise unauthenticated("bad_signature")
    # Freshness after the signature, so "stale_timestamp" always means a genuine
    # but old (or future) delivery, never a forgery.
    signed_at = check_fresh(seconds * 1000, now)
    return VerifyResult(NAME, "hmac-sha256", None, signed_at)


def _verify_apikey(found: dict[str, str], secret: str) -> VerifyResult:
    authorization = found.get("authorization")
    if not authorization:
        raise unauthenticated("missing_signature")
    scheme, _, key = authorization.strip().partition(" ")
    if scheme.lower() != APIKEY_SCHEME.lower() or not constant_time_equal(secret, key.strip()):
        raise unauthenticated("bad_token")
    return VerifyResult(NAME, "apikey")


def parse(raw_body: bytes) -> list[Transfer]:
    """The single transfer of an authenticated delivery; ``WebhookRejected`` (400)
    when it is malformed."""
    item = load_json_object(raw_body)
    direction = item.get("transferType")
    if direction is None:
        raise malformed("missing_field:transferType")
    if direction not in ("in", "out"):
        raise malformed("invalid_field:transferType")
    return [
        Transfer(
            provider_transaction_id=identifier(item, "id"),
            direction=direction,
            amount_vnd=amount(item, "transferAmount"),
            content=text(item, "content"),
            description=optional_text(item, "description"),
            bank_reference=optional_text(item, "referenceCode"),
            account_number=optional_text(item, "accountNumber"),
            sub_account=optional_text(item, "subAccount"),
            bank_time=local_time(item, "transactionDate"),
            running_balance_vnd=optional_integer(item, "accumulated"),
            provider_code=optional_text(item, "code"),
            # SePay documents no test call (§7).
            is_test=False,
            raw=item,
        )
    ]


def success_response() -> tuple[int, dict[str, Any]]:
    """§3.3: HTTP 200 with ``{"success": true}``; any 2xx counts as delivered."""
    return 200, {"success": True}


def sign(raw_body: bytes, secret: str, *, now: datetime, mode: Mode = "hmac") -> dict[str, str]:
    """The headers SePay would send with ``raw_body``."""
    check_secret(secret)
    headers = {"Content-Type": "application/json"}
    if mode == "apikey":
        headers["Authorization"] = f"{APIKEY_SCHEME} {secret}"
        return headers
    if mode != "hmac":
        raise ValueError(f"unknown SePay mode {mode!r}")
    seconds = unix_seconds(now)
    headers[TIMESTAMP_HEADER] = str(seconds)
    headers[SIGNATURE_HEADER] = "sha256=" + hmac_sha256_hex(
        secret, f"{seconds}.".encode("ascii") + raw_body
    )
    return headers


def build_delivery(
    transfers: list[Transfer],
    secret: str,
    *,
    now: datetime,
    mode: Mode = "hmac",
    gateway: str = "Vietcombank",
) -> tuple[bytes, dict[str, str]]:
    """One signed SePay delivery, with the field layout of SePay's sample (§8.3).

    Fields SePay does not carry (counter-account details) are dropped, as the real
    SePay would; see ``carried_fields``.
    """
    transfer = single(transfers, NAME)
    if transfer.is_test:
        raise ValueError("SePay has no test call")
    body = {
        "id": numeric_id(transfer.provider_transaction_id, "SePay id"),
        "gateway": gateway,
        "transactionDate": format_local_time(transfer.bank_time),
        "accountNumber": transfer.account_number or "",
        "code": transfer.provider_code,
        "content": transfer.content,
        "transferType": transfer.direction,
        "transferAmount": transfer.amount_vnd,
        "accumulated": transfer.running_balance_vnd,
        "subAccount": transfer.sub_account,
        "referenceCode": transfer.bank_reference,
        "description": transfer.description or "",
    }
    raw_body = dump_json(body)
    return raw_body, sign(raw_body, secret, now=now, mode=mode)


def carried_fields(**options: Any) -> frozenset[str]:
    """The ``Transfer`` fields a SePay delivery carries (the others parse as None/False)."""
    return _CARRIED
