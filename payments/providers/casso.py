"""Casso bank-account monitoring webhooks, v2 and legacy v1 (webhooks.md §4, §5).

Pure: no Django.

* **v2** (§4): ``{"error": 0, "data": {...}}`` with one transaction, signed in
  ``X-Casso-Signature: t=<unix ms>,v1=<hex HMAC-SHA512>`` over
  ``"<t>." + compact JSON of the whole parsed body, keys sorted recursively``.
  Casso's own samples disagree on JSON escaping (§4.3), so ``verify`` tries the
  JavaScript, Python and PHP forms in that order and reports the one that
  matched in ``VerifyResult.detail``. ``t`` must be within 5 minutes of now (our
  policy, §4.2 [C]).
* **v1** (§5): ``{"error": 0, "data": [...]}``, possibly several transactions,
  authenticated by a plain ``secure-token`` header. The token does not cover the
  body and there is no timestamp, so v1 cannot detect tampering or replays.

``verify(..., version=None)`` picks the version from the headers present; pass the
connection's configured version to refuse the other one. ``parse`` reads either
shape (``data`` object for v2, array for v1).

Amounts: a negative amount is money out (third-party handlers, §4.1 [2]/[C]); zero
is refused. The test call ("Gọi thử") is ``id: 0`` (§4.1); we treat ``id: 0`` as a
test in v1 too, which Casso does not document [C].
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from .base import (
    LOCAL_TIME_FORMAT,
    Transfer,
    VerifyResult,
    check_fresh,
    check_now,
    check_secret,
    constant_time_equal,
    dump_json,
    format_local_time,
    hmac_hex,
    identifier,
    load_json,
    load_json_object,
    local_time,
    malformed,
    normalise_headers,
    numeric_id,
    optional_integer,
    optional_text,
    parse_signature_header,
    parse_timestamp,
    require,
    signed_amount,
    single,
    text,
    unauthenticated,
    unix_millis,
)

NAME = "casso"
SIGNATURE_HEADER = "X-Casso-Signature"
TOKEN_HEADER = "secure-token"
TEST_REFERENCE = "MA_GIAO_DICH_THU_NGHIEM"

Version = Literal["v2", "v1"]
Form = Literal["js", "python", "php"]
FORMS: tuple[Form, ...] = ("js", "python", "php")

VARIANTS: dict[str, dict[str, Any]] = {
    "v2-js": {"version": "v2", "form": "js"},
    "v2-python": {"version": "v2", "form": "python"},
    "v2-php": {"version": "v2", "form": "php"},
    "v1": {"version": "v1"},
}

_CARRIED_V1 = frozenset(
    {
        "provider_transaction_id",
        "direction",
        "amount_vnd",
        "content",
        "bank_reference",
        "account_number",
        "bank_time",
        "running_balance_vnd",
        "is_test",
    }
)
_CARRIED_V2 = _CARRIED_V1 | {"counter_account", "counter_name", "counter_bank", "sub_account"}


# --- serialisation forms (§4.3) ----------------------------------------------------------


def _js_numbers(value: Any) -> Any:
    """JSON.stringify writes an integral float as an integer (25000000, not 25000000.0)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {key: _js_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_js_numbers(item) for item in value]
    return value


def serialise(body: Any, form: Form, *, sort_keys: bool) -> str:
    """Compact JSON as Casso's JavaScript, Python or PHP sample writes it.

    ``js``: ``JSON.stringify`` (UTF-8 kept, ``/`` kept); ``python``: ``json.dumps``
    (non-ASCII as ``\\uXXXX``); ``php``: ``json_encode`` (as Python, and ``/`` as
    ``\\/``; a ``/`` can only occur inside a JSON string, so the replacement is safe).
    """
    if form == "js":
        return json.dumps(
            _js_numbers(body), sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=False
        )
    ascii_json = json.dumps(body, sort_keys=sort_keys, separators=(",", ":"))
    if form == "python":
        return ascii_json
    if form == "php":
        return ascii_json.replace("/", "\\/")
    raise ValueError(f"unknown Casso serialisation form {form!r}")


def canonical_forms(body: Any) -> dict[Form, str]:
    """The three candidate signed JSON texts, in the order §4.3 says to try them."""
    return {form: serialise(body, form, sort_keys=True) for form in FORMS}


def _v2_signature(secret: str, millis: int, canonical: str) -> str:
    return hmac_hex(hashlib.sha512, secret, f"{millis}.{canonical}".encode())


# --- verify -------------------------------------------------------------------------------


def verify(
    raw_body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    now: datetime,
    version: Version | None = None,
) -> VerifyResult:
    """Authenticate a delivery; raises ``WebhookRejected`` (401) otherwise.

    v2 signs a re-serialisation of the parsed body, not the raw bytes, so a v2
    body that is not JSON cannot be authenticated at all: it is refused with 400
    ``malformed_json`` (§2 step 3) and nothing of it is trusted.
    """
    check_secret(secret)
    check_now(now)
    if version not in (None, "v2", "v1"):
        raise ValueError(f"unknown Casso version {version!r}")
    found = normalise_headers(headers)
    if version == "v2" or (version is None and SIGNATURE_HEADER.lower() in found):
        return _verify_v2(raw_body, found, secret, now)
    if version == "v1" or (version is None and TOKEN_HEADER in found):
        return _verify_v1(found, secret)
    raise unauthenticated("missing_signature")


def _verify_v2(raw_body: bytes, found: dict[str, str], secret: str, now: datetime) -> VerifyResult:
    header = found.get(SIGNATURE_HEADER.lower())
    if not header:
        raise unauthenticated("missing_signature")
    parts = parse_signature_header(header)
    millis = parse_timestamp(parts["t"])
    received = parts["v1"].lower()
    body = load_json(raw_body)
    matched: Form | None = None
    for form, canonical in canonical_forms(body).items():
        if constant_time_equal(_v2_signature(secret, millis, canonical), received):
            matched = form
            break
    if matched is None:
        raise unauthenticated("bad_signature")
    signed_at = check_fresh(millis, now)
    return VerifyResult(NAME, "casso-v2", matched, signed_at)


def _verify_v1(found: dict[str, str], secret: str) -> VerifyResult:
    token = found.get(TOKEN_HEADER)
    if not token:
        raise unauthenticated("missing_signature")
    if not constant_time_equal(secret, token.strip()):
        raise unauthenticated("bad_token")
    return VerifyResult(NAME, "casso-v1-token")


# --- parse --------------------------------------------------------------------------------


def parse(raw_body: bytes) -> list[Transfer]:
    """Transfers of an authenticated delivery: one for v2, one or more for v1."""
    body = load_json_object(raw_body)
    error = body.get("error", 0)
    if isinstance(error, bool) or error != 0:
        raise malformed("provider_error")
    data = require(body, "data")
    if isinstance(data, dict):
        return [_parse_v2_item(data)]
    if isinstance(data, list):
        if not all(isinstance(item, dict) for item in data):
            raise malformed("invalid_field:data")
        return [_parse_v1_item(item) for item in data]
    raise malformed("invalid_field:data")


def _parse_v2_item(item: dict[str, Any]) -> Transfer:
    transaction_id = identifier(item, "id")
    direction, amount_vnd = signed_amount(item, "amount")
    return Transfer(
        provider_transaction_id=transaction_id,
        direction=direction,
        amount_vnd=amount_vnd,
        # Casso's "description" is the transfer content (§4.1); no separate bank text.
        content=text(item, "description"),
        bank_reference=optional_text(item, "reference"),
        counter_account=optional_text(item, "counterAccountNumber"),
        counter_name=optional_text(item, "counterAccountName"),
        # The BIN (counterAccountBankId) stays in ``raw``.
        counter_bank=optional_text(item, "counterAccountBankName"),
        account_number=optional_text(item, "accountNumber"),
        sub_account=optional_text(item, "virtualAccountNumber"),
        bank_time=local_time(item, "transactionDateTime"),
        running_balance_vnd=optional_integer(item, "runningBalance"),
        is_test=transaction_id == "0",
        raw=item,
    )


def _parse_v1_item(item: dict[str, Any]) -> Transfer:
    transaction_id = identifier(item, "id")
    direction, amount_vnd = signed_amount(item, "amount")
    return Transfer(
        provider_transaction_id=transaction_id,
        direction=direction,
        amount_vnd=amount_vnd,
        content=text(item, "description"),
        bank_reference=optional_text(item, "tid"),
        # The corresponsive*/virtualAccount/bank_sub_acc_id fields are not in §5;
        # they appear in real v1 deliveries quoted by third-party code [2].
        counter_account=optional_text(item, "corresponsiveAccount"),
        counter_name=optional_text(item, "corresponsiveName"),
        counter_bank=optional_text(item, "corresponsiveBankName"),
        account_number=optional_text(item, "bank_sub_acc_id") or optional_text(item, "subAccId"),
        sub_account=optional_text(item, "virtualAccount"),
        # §5's sample has a bare date; real deliveries carry date and time [2].
        bank_time=local_time(item, "when", (LOCAL_TIME_FORMAT, "%Y-%m-%d")),
        running_balance_vnd=optional_integer(item, "cusum_balance"),
        is_test=transaction_id == "0",
        raw=item,
    )


def success_response() -> tuple[int, dict[str, Any]]:
    """Any 2xx counts as delivered (§4.4, §7 [C])."""
    return 200, {"success": True}


# --- signing and building -------------------------------------------------------------------


def sign(
    raw_body: bytes,
    secret: str,
    *,
    now: datetime,
    version: Version = "v2",
    form: Form = "js",
) -> dict[str, str]:
    """The headers Casso would send with ``raw_body`` (which must be JSON for v2)."""
    check_secret(secret)
    headers = {"Content-Type": "application/json"}
    if version == "v1":
        headers["secure-token"] = secret
        return headers
    if version != "v2":
        raise ValueError(f"unknown Casso version {version!r}")
    body = json.loads(raw_body)
    millis = unix_millis(now)
    canonical = serialise(body, form, sort_keys=True)
    headers[SIGNATURE_HEADER] = f"t={millis},v1={_v2_signature(secret, millis, canonical)}"
    return headers


def _casso_id(transfer: Transfer) -> int:
    transaction_id = numeric_id(transfer.provider_transaction_id, "Casso id")
    if transfer.is_test != (transaction_id == 0):
        raise ValueError("a Casso test call is exactly the transaction with id 0")
    return transaction_id


def _signed(transfer: Transfer) -> int:
    return transfer.amount_vnd if transfer.direction == "in" else -transfer.amount_vnd


def build_delivery(
    transfers: list[Transfer],
    secret: str,
    *,
    now: datetime,
    version: Version = "v2",
    form: Form = "js",
    bank_name: str = "VPBank",
    bank_abbreviation: str = "VPB",
) -> tuple[bytes, dict[str, str]]:
    """One signed Casso delivery; the body bytes are written in ``form`` too.

    v2 carries exactly one transfer, v1 one or more. Fields the format does not
    carry are dropped; see ``carried_fields``.
    """
    if version == "v1":
        if not transfers:
            raise ValueError("a Casso v1 delivery carries at least one transfer")
        items = [
            {
                "id": _casso_id(transfer),
                "when": format_local_time(transfer.bank_time),
                "amount": _signed(transfer),
                "description": transfer.content,
                "cusum_balance": transfer.running_balance_vnd,
                "tid": transfer.bank_reference or "",
                "subAccId": transfer.account_number or "",
            }
            for transfer in transfers
        ]
        raw_body = dump_json({"error": 0, "data": items})
        return raw_body, sign(raw_body, secret, now=now, version="v1")
    if version != "v2":
        raise ValueError(f"unknown Casso version {version!r}")
    transfer = single(transfers, NAME)
    data = {
        "id": _casso_id(transfer),
        "reference": transfer.bank_reference or "",
        "description": transfer.content,
        "amount": _signed(transfer),
        "runningBalance": transfer.running_balance_vnd,
        "transactionDateTime": format_local_time(transfer.bank_time),
        "accountNumber": transfer.account_number or "",
        "bankName": bank_name,
        "bankAbbreviation": bank_abbreviation,
        "virtualAccountNumber": transfer.sub_account or "",
        "virtualAccountName": "",
        "counterAccountName": transfer.counter_name or "",
        "counterAccountNumber": transfer.counter_account or "",
        "counterAccountBankId": "",
        "counterAccountBankName": transfer.counter_bank or "",
    }
    raw_body = serialise({"error": 0, "data": data}, form, sort_keys=False).encode()
    return raw_body, sign(raw_body, secret, now=now, version="v2", form=form)


def carried_fields(*, version: Version = "v2", **options: Any) -> frozenset[str]:
    """The ``Transfer`` fields a delivery of ``version`` carries."""
    return _CARRIED_V1 if version == "v1" else _CARRIED_V2
