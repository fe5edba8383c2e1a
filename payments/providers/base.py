"""Common shapes for bank-transfer webhook providers. Pure: no Django.

Every provider module in this package has the same shape (``Provider`` below):

* ``verify(raw_body, headers, secret, *, now)`` authenticates one delivery and
  raises ``WebhookRejected`` (401) when it cannot;
* ``parse(raw_body)`` turns an *authenticated* body into ``Transfer`` values and
  raises ``WebhookRejected`` (400) on malformed input;
* ``success_response()`` is the status and JSON body the provider expects;
* ``sign`` / ``build_delivery`` produce deliveries byte for byte in the
  provider's format, for the in-house simulator and for tests.

The caller stores the raw delivery first (STYLE.md "store first, then trust"),
then calls ``verify``, and only then ``parse``. Specification:
shared/spec/webhooks.md (section numbers below refer to it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# §3.2: SePay rejects a drift of more than 5 minutes; we apply the same window to
# every provider that sends a timestamp (Casso v2 documents none, §4.2 [C]).
TIMESTAMP_TOLERANCE = timedelta(minutes=5)

# Sanity bound, far above any market fee, that keeps amounts inside a
# PostgreSQL bigint and rejects absurd values early.
MAX_AMOUNT_VND = 10**15

LOCAL_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

Direction = Literal["in", "out"]


@dataclass(frozen=True)
class Transfer:
    """One bank transfer as reported by a provider, in one shape for all providers.

    ``raw`` keeps the provider's original item for provenance; it is left out of
    equality and hashing, so two deliveries of the same transfer compare equal.
    """

    provider_transaction_id: str
    direction: Direction
    amount_vnd: int
    content: str
    bank_time: datetime
    description: str | None = None
    bank_reference: str | None = None
    counter_account: str | None = None
    counter_name: str | None = None
    counter_bank: str | None = None
    account_number: str | None = None
    sub_account: str | None = None
    running_balance_vnd: int | None = None
    provider_code: str | None = None
    is_test: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.provider_transaction_id, str) or not self.provider_transaction_id:
            raise ValueError("provider_transaction_id must be a non-empty string")
        if self.direction not in ("in", "out"):
            raise ValueError("direction must be 'in' or 'out'")
        if not _is_int(self.amount_vnd) or not 0 < self.amount_vnd < MAX_AMOUNT_VND:
            raise ValueError("amount_vnd must be a positive integer number of đồng")
        if not isinstance(self.content, str):
            raise ValueError("content must be a string")
        if not isinstance(self.bank_time, datetime) or not _is_aware(self.bank_time):
            raise ValueError("bank_time must be a timezone-aware datetime")
        if self.running_balance_vnd is not None and not _is_int(self.running_balance_vnd):
            raise ValueError("running_balance_vnd must be an integer or None")
        if not isinstance(self.is_test, bool):
            raise ValueError("is_test must be a bool")


@dataclass(frozen=True)
class VerifyResult:
    """What ``verify`` established about an authentic delivery."""

    provider: str
    # How the delivery was authenticated, e.g. "hmac-sha256", "apikey",
    # "casso-v2", "casso-v1-token", "payos-checksum", "market40-v1".
    scheme: str
    # Extra facts worth logging: for Casso v2 the serialisation form that
    # matched ("js", "python" or "php", §4.3).
    detail: str | None = None
    # The provider's signing time, when the scheme has one.
    signed_at: datetime | None = None


_MESSAGES_VI = {
    "missing_signature": "Thiếu chữ ký hoặc khoá xác thực webhook.",
    "bad_signature": "Chữ ký webhook không hợp lệ.",
    "bad_signature_header": "Tiêu đề chữ ký webhook sai định dạng.",
    "bad_token": "Khoá xác thực webhook không đúng.",
    "missing_timestamp": "Thiếu dấu thời gian ký webhook.",
    "bad_timestamp": "Dấu thời gian ký webhook không hợp lệ.",
    "stale_timestamp": "Dấu thời gian ký webhook lệch quá 5 phút so với máy chủ.",
    "ambiguous_header": "Tiêu đề xác thực bị gửi lặp với các giá trị khác nhau.",
    "malformed_json": "Nội dung webhook không phải JSON hợp lệ.",
    "not_an_object": "Nội dung webhook phải là một đối tượng JSON.",
    "provider_error": "Nhà cung cấp báo lỗi trong nội dung webhook.",
    "unsuccessful_transfer": "Nhà cung cấp báo giao dịch không thành công.",
    "unsupported_currency": "Chỉ nhận giao dịch bằng đồng Việt Nam (VND).",
    "unsupported_version": "Phiên bản định dạng webhook không được hỗ trợ.",
}


def message_vi(reason: str) -> str:
    """Vietnamese text for a rejection reason code."""
    kind, _, name = reason.partition(":")
    if kind == "missing_field":
        return f"Thiếu trường bắt buộc «{name}»."
    if kind == "invalid_field":
        return f"Giá trị của trường «{name}» không hợp lệ."
    return _MESSAGES_VI.get(reason, "Webhook bị từ chối.")


class WebhookRejected(Exception):
    """A delivery we refuse.

    ``status`` is 401 when the sender is not authenticated (bad or missing
    signature, wrong key, stale timestamp) and 400 for malformed input;
    ``reason`` is a short machine-readable English code such as
    ``"bad_signature"`` or ``"missing_field:amount"``; ``message_vi`` is for people.
    """

    def __init__(self, status: Literal[400, 401], reason: str, message: str | None = None):
        if status not in (400, 401):
            raise ValueError("WebhookRejected status must be 400 or 401")
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.message_vi = message or message_vi(reason)


def unauthenticated(reason: str) -> WebhookRejected:
    return WebhookRejected(401, reason)


def malformed(reason: str) -> WebhookRejected:
    return WebhookRejected(400, reason)


class Provider(Protocol):
    """The shape of every module in ``payments.providers`` (see the module docstring)."""

    NAME: str
    VARIANTS: Mapping[str, Mapping[str, Any]]

    def verify(
        self, raw_body: bytes, headers: Mapping[str, str], secret: str, *, now: datetime
    ) -> VerifyResult: ...

    def parse(self, raw_body: bytes) -> list[Transfer]: ...

    def success_response(self) -> tuple[int, dict[str, Any]]: ...

    def sign(self, raw_body: bytes, secret: str, *, now: datetime) -> dict[str, str]: ...

    def build_delivery(
        self, transfers: list[Transfer], secret: str, *, now: datetime
    ) -> tuple[bytes, dict[str, str]]: ...

    def carried_fields(self, **options: Any) -> frozenset[str]: ...


# --- authentication helpers -------------------------------------------------------


def normalise_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-case header names. Two spellings of one header with different values
    are refused rather than guessed between."""
    normalised: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key in normalised and normalised[key] != value:
            raise unauthenticated("ambiguous_header")
        normalised[key] = value
    return normalised


def check_secret(secret: str) -> None:
    # An empty secret would make token comparisons accept an empty header. This
    # is a configuration bug on our side, so it is not a WebhookRejected.
    if not isinstance(secret, str) or not secret:
        raise ValueError("webhook secret is not configured")


def check_now(now: datetime) -> None:
    if not isinstance(now, datetime) or not _is_aware(now):
        raise ValueError("now must be a timezone-aware datetime")


def constant_time_equal(expected: str, received: str) -> bool:
    """``hmac.compare_digest`` on UTF-8 bytes (the str form refuses non-ASCII)."""
    return hmac.compare_digest(
        expected.encode("utf-8", "surrogateescape"),
        received.encode("utf-8", "surrogateescape"),
    )


def hmac_hex(digest: Callable[..., Any], secret: str, message: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), message, digest).hexdigest()


def hmac_sha256_hex(secret: str, message: bytes) -> str:
    return hmac_hex(hashlib.sha256, secret, message)


def unix_seconds(now: datetime) -> int:
    return (now - EPOCH) // timedelta(seconds=1)


def unix_millis(now: datetime) -> int:
    return (now - EPOCH) // timedelta(milliseconds=1)


def check_fresh(signed_at_ms: int, now: datetime) -> datetime:
    """Reject a signing time more than ``TIMESTAMP_TOLERANCE`` from ``now``, either way.

    Works on integers so that absurd timestamps cannot overflow ``datetime``.
    """
    tolerance_ms = TIMESTAMP_TOLERANCE // timedelta(milliseconds=1)
    if abs(unix_millis(now) - signed_at_ms) > tolerance_ms:
        raise unauthenticated("stale_timestamp")
    return EPOCH + timedelta(milliseconds=signed_at_ms)


_DIGITS = re.compile(r"[0-9]{1,15}")


def parse_timestamp(value: str) -> int:
    """ASCII digits only (``str.isdigit`` also accepts other scripts' digits)."""
    value = value.strip()
    if not _DIGITS.fullmatch(value):
        raise unauthenticated("bad_timestamp")
    return int(value)


def parse_signature_header(value: str) -> dict[str, str]:
    """``t=<digits>,v1=<hex>`` (Casso v2 and our simulator): split on ``,`` then on
    the first ``=``. A repeated or empty part makes the header unusable."""
    parts: dict[str, str] = {}
    for part in value.split(","):
        name, sep, content = part.strip().partition("=")
        if not sep or not name or name in parts:
            raise unauthenticated("bad_signature_header")
        parts[name] = content.strip()
    if not parts.get("t") or not parts.get("v1"):
        raise unauthenticated("bad_signature_header")
    return parts


# --- strict JSON ------------------------------------------------------------------


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            # Two parsers could pick different values; refuse instead.
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_strings(value: Any) -> None:
    # Lone surrogates ("\ud800") parse in Python but cannot be encoded as UTF-8,
    # so they would break signature checks and storage later.
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, dict):
        for key, item in value.items():
            key.encode("utf-8")
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def load_json(raw_body: bytes) -> Any:
    """Parse strict JSON: UTF-8, no duplicate keys, no NaN/Infinity. 400 otherwise."""
    try:
        value = json.loads(
            raw_body.decode("utf-8"),
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
        )
        _check_strings(value)
    except (ValueError, RecursionError) as exc:  # UnicodeError and JSONDecodeError too
        raise malformed("malformed_json") from exc
    return value


def load_json_object(raw_body: bytes) -> dict[str, Any]:
    value = load_json(raw_body)
    if not isinstance(value, dict):
        raise malformed("not_an_object")
    return value


def dump_json(value: Any, *, ensure_ascii: bool = False) -> bytes:
    """Compact JSON, as the providers' samples are written."""
    return json.dumps(value, ensure_ascii=ensure_ascii, separators=(",", ":")).encode("utf-8")


# --- field readers for parse() -------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_aware(value: datetime) -> bool:
    return value.tzinfo is not None and value.utcoffset() is not None


def require(obj: Mapping[str, Any], key: str) -> Any:
    value = obj.get(key)
    if value is None:
        raise malformed(f"missing_field:{key}")
    return value


def integer(obj: Mapping[str, Any], key: str) -> int:
    """A required JSON integer. An integral float (``3000.0``) is the same JSON
    number and is accepted; fractions, strings and booleans are not (§9)."""
    value = require(obj, key)
    if _is_int(value):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    raise malformed(f"invalid_field:{key}")


def optional_integer(obj: Mapping[str, Any], key: str) -> int | None:
    return None if obj.get(key) is None else integer(obj, key)


def identifier(obj: Mapping[str, Any], key: str) -> str:
    """A provider's numeric transaction id, as a string. Must be a real JSON int."""
    value = require(obj, key)
    if not _is_int(value) or value < 0:
        raise malformed(f"invalid_field:{key}")
    return str(value)


def text_identifier(obj: Mapping[str, Any], key: str) -> str:
    value = require(obj, key)
    if not isinstance(value, str) or not value.strip():
        raise malformed(f"invalid_field:{key}")
    return value


def amount(obj: Mapping[str, Any], key: str) -> int:
    """A positive amount in đồng."""
    value = integer(obj, key)
    if not 0 < value < MAX_AMOUNT_VND:
        raise malformed(f"invalid_field:{key}")
    return value


def signed_amount(obj: Mapping[str, Any], key: str) -> tuple[Direction, int]:
    """Casso style: negative means money out (§4.1, [2]); zero is refused."""
    value = integer(obj, key)
    if value == 0 or abs(value) >= MAX_AMOUNT_VND:
        raise malformed(f"invalid_field:{key}")
    return ("out", -value) if value < 0 else ("in", value)


def text(obj: Mapping[str, Any], key: str) -> str:
    """Transfer content: kept exactly as given; missing or null becomes "".

    A transfer without a note is still money that arrived; it belongs in the
    unmatched queue, not in a 400.
    """
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise malformed(f"invalid_field:{key}")
    return value


def optional_text(obj: Mapping[str, Any], key: str) -> str | None:
    """Optional text: null and "" both become None; a number becomes its digits."""
    value = obj.get(key)
    if value is None or value == "":
        return None
    if _is_int(value):
        return str(value)
    if not isinstance(value, str):
        raise malformed(f"invalid_field:{key}")
    return value


def local_time(
    obj: Mapping[str, Any], key: str, formats: tuple[str, ...] = (LOCAL_TIME_FORMAT,)
) -> datetime:
    """``"YYYY-MM-DD HH:MM:SS"`` in Vietnam local time (UTC+7, no DST), made aware."""
    value = require(obj, key)
    if isinstance(value, str):
        for fmt in formats:
            try:
                return datetime.strptime(value, fmt).replace(tzinfo=VN_TZ)
            except ValueError:
                continue
    raise malformed(f"invalid_field:{key}")


def format_local_time(moment: datetime) -> str:
    if not _is_aware(moment):
        raise ValueError("bank_time must be timezone-aware")
    return moment.astimezone(VN_TZ).strftime(LOCAL_TIME_FORMAT)


def single(transfers: list[Transfer], provider: str) -> Transfer:
    if len(transfers) != 1:
        raise ValueError(f"{provider} delivers exactly one transfer per webhook")
    return transfers[0]


def numeric_id(value: str, what: str) -> int:
    if not value.isascii() or not value.isdigit() or str(int(value)) != value:
        raise ValueError(f"{what} must be a decimal integer without leading zeros: {value!r}")
    return int(value)
