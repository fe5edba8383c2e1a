"""VietQR payload codec: the EMVCo TLV string behind every market40 payment QR.

Pure module (no Django), so the codec can be tested, benchmarked and reused by
management commands without settings. The reference is ``shared/spec/vietqr.md``;
section numbers below ("vietqr.md §6") point into it.

The hot paths (``encode``, ``decode``) avoid regular expressions and keep to slicing,
dict lookups and C-level ``str`` predicates: pay pages and placard sheets render many
codes per request, and the target is at least 50,000 encodes and decodes per second on
one core (see ``benchmarks/bench_vietqr.py``).
"""

from __future__ import annotations

import json
import re
import unicodedata
from binascii import crc_hqx
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any, TypedDict, Unpack

__all__ = [
    "AMOUNT_MAX_VND",
    "GUID_NAPAS",
    "SERVICE_ACCOUNT",
    "SERVICE_CARD",
    "Bank",
    "VietQR",
    "VietQRError",
    "build_payment_qr",
    "crc16",
    "decode",
    "encode",
    "fold_purpose",
    "load_bank_list",
]

GUID_NAPAS = "A000000727"  # NAPAS AID in 38/00 (vietqr.md §4)
SERVICE_ACCOUNT = "QRIBFTTA"  # NAPAS247 transfer to an account (vietqr.md §4)
SERVICE_CARD = "QRIBFTTC"  # NAPAS247 transfer to a card (vietqr.md §4)
CURRENCY_VND = "704"  # ISO 4217 numeric (vietqr.md §3)
COUNTRY_VN = "VN"
STATIC = "11"  # reusable QR, payer types the amount (vietqr.md §7)
DYNAMIC = "12"  # one payment, amount present (vietqr.md §7)
# NAPAS247 per-transaction limit is "under 500 million đồng" (vietqr.md §7, NAPAS §8.1.1).
AMOUNT_MAX_VND = 499_999_999
PURPOSE_MAX = 25  # 62/08 is ANS ≤ 25 (vietqr.md §5, §8)

_SERVICES = frozenset({SERVICE_ACCOUNT, SERVICE_CARD})
_INITIATIONS = frozenset({STATIC, DYNAMIC})
# Root tags that have a dedicated VietQR field; everything else lands in ``extra``.
_ROOT_KNOWN = frozenset({"00", "01", "38", "52", "53", "54", "58", "59", "60", "62", "63"})
# Length limits of the root fields we emit (vietqr.md §3 table).
_ROOT_MAX = {"52": 4, "54": 13, "59": 25, "60": 15}

# "00".."99" -> 0..99. One dict lookup both validates a two-digit length field and
# converts it, which is cheaper than ``isdigit()`` + ``int()`` (vietqr.md §2).
_LENGTH = {f"{n:02d}": n for n in range(100)}
_LENGTH_STR = tuple(f"{n:02d}" for n in range(100))
_HEX = frozenset("0123456789ABCDEFabcdef")
_DIGITS = frozenset("0123456789")

# Names used in "missing tag" messages, English and Vietnamese.
_TAG_NAMES: dict[str, tuple[str, str]] = {
    "00": ("payload format indicator", "chỉ báo định dạng"),
    "01": ("point of initiation method", "phương thức khởi tạo"),
    "38": ("VietQR merchant account information", "thông tin tài khoản thụ hưởng VietQR"),
    "38/00": ("GUID", "mã định danh GUID"),
    "38/01": ("beneficiary organisation", "thông tin đơn vị thụ hưởng"),
    "38/01/00": ("bank BIN", "mã BIN ngân hàng"),
    "38/01/01": ("account number", "số tài khoản"),
    "53": ("transaction currency", "mã tiền tệ"),
    "58": ("country code", "mã quốc gia"),
    "63": ("CRC", "mã kiểm tra CRC"),
}


class VietQRError(ValueError):
    """The one error type of this module.

    ``str(error)`` is a short English message naming the tag and the expected and found
    values; ``message_vi`` says the same in Vietnamese for the manager UI; ``code`` is a
    stable machine code for the API error envelope; ``tag`` is the tag path
    (``"38/01/01"``) or None when the error is not about one tag.
    """

    def __init__(
        self,
        code: str,
        message: str,
        message_vi: str,
        *,
        tag: str | None = None,
        expected: str | None = None,
        found: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.message_vi = message_vi
        self.tag = tag
        self.expected = expected
        self.found = found


def crc16(data: str) -> str:
    """CRC-16/CCITT-FALSE of ``data`` as 4 uppercase hex digits, leading zeros kept.

    ``binascii.crc_hqx`` with initial value 0xFFFF is exactly CRC-16/CCITT-FALSE
    (poly 0x1021, no reflection, no final XOR); "%04X" keeps the leading zeros that a
    plain "%X" drops (vietqr.md §6).
    """
    return f"{crc_hqx(data.encode('ascii'), 0xFFFF):04X}"


# --------------------------------------------------------------------------- model


class VietQRFields(TypedDict, total=False):
    """Keyword arguments accepted by ``encode`` (the fields of ``VietQR``)."""

    point_of_initiation: str | None
    guid: str
    bin: str
    account: str
    service: str | None
    mcc: str | None
    currency: str
    amount: str | None
    country: str
    merchant_name: str | None
    city: str | None
    additional_data: dict[str, str] | None
    crc: str | None
    extra: dict[str, str]


@dataclass(frozen=True, slots=True, kw_only=True)
class VietQR:
    """The decoded content of a VietQR payload, one attribute per tag.

    String values are exactly as in the payload (no trimming, no case change), so
    ``encode(decode(p)) == p`` for any payload in ascending tag order with an uppercase
    CRC. ``None`` means "tag absent".

    ``extra`` keeps tags without a dedicated attribute, keyed by tag path: root tags
    (``"64"``, ``"80"``, ``"15"``…) by their ID, and unknown sub-tags of the merchant
    templates as ``"38/NN"`` and ``"38/01/NN"``. Sub-tags of 62 all live in
    ``additional_data``, empty values included (vietqr.md §11.2 rule 5).

    ``crc`` is the CRC as read, in its original case; ``encode`` ignores it and always
    writes a freshly computed uppercase CRC.
    """

    point_of_initiation: str | None = None  # None: encode derives 11/12 from the amount
    guid: str = GUID_NAPAS
    bin: str
    account: str
    service: str | None = SERVICE_ACCOUNT
    mcc: str | None = None
    currency: str = CURRENCY_VND
    amount: str | None = None
    country: str = COUNTRY_VN
    merchant_name: str | None = None
    city: str | None = None
    # hash=False: dicts are unhashable, and equality already covers them.
    additional_data: dict[str, str] | None = field(default=None, hash=False)
    crc: str | None = None
    extra: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def amount_vnd(self) -> int | None:
        """The amount in whole đồng (VND has no minor unit), or None for a static QR."""
        amount = self.amount
        if amount is None:
            return None
        # A trailing "." is legal EMV (vietqr.md §7); there are never decimals for VND.
        return int(amount[:-1] if amount.endswith(".") else amount)

    @property
    def purpose(self) -> str | None:
        """62/08, the transfer note bank apps pre-fill (vietqr.md §5, §10)."""
        data = self.additional_data
        return None if data is None else data.get("08")

    @property
    def is_dynamic(self) -> bool:
        return self.point_of_initiation == DYNAMIC

    def to_dict(self) -> dict[str, Any]:
        """The shape of ``vectors.json`` "decoded", plus ``extra``."""
        return {
            "point_of_initiation": self.point_of_initiation,
            "guid": self.guid,
            "bin": self.bin,
            "account": self.account,
            "service": self.service,
            "mcc": self.mcc,
            "currency": self.currency,
            "amount": self.amount,
            "country": self.country,
            "merchant_name": self.merchant_name,
            "city": self.city,
            "additional_data": None if self.additional_data is None else dict(self.additional_data),
            "crc": self.crc,
            "extra": dict(self.extra),
        }


# --------------------------------------------------------------------------- errors


def _missing(tag: str) -> VietQRError:
    en, vi = _TAG_NAMES.get(tag, (f"tag {tag}", f"trường {tag}"))
    return VietQRError(
        "missing_tag",
        f"missing mandatory tag {tag} ({en})",
        f"Thiếu trường bắt buộc {tag} ({vi})",
        tag=tag,
        expected=tag,
    )


def _wrong_value(
    code: str,
    tag: str,
    name_en: str,
    name_vi: str,
    expected: str,
    found: str,
    expected_vi: str | None = None,
) -> VietQRError:
    return VietQRError(
        code,
        f"tag {tag} ({name_en}): expected {expected}, found {found!r}",
        f"Trường {tag} ({name_vi}) phải là {expected_vi or expected}, nhận được '{found}'",
        tag=tag,
        expected=expected,
        found=found,
    )


def _bad_bin(value: str) -> VietQRError:
    return VietQRError(
        "bad_bin",
        f"tag 38/01/00 (bank BIN): expected exactly 6 digits, found {value!r}",
        f"Mã BIN ngân hàng (trường 38/01/00) phải gồm đúng 6 chữ số, nhận được '{value}'",
        tag="38/01/00",
        expected="6 digits",
        found=value,
    )


def _bad_account(value: str) -> VietQRError:
    return VietQRError(
        "bad_account",
        f"tag 38/01/01 (account): expected 1-19 letters or digits, found {value!r}",
        "Số tài khoản (trường 38/01/01) phải gồm 1–19 chữ cái hoặc chữ số, "
        f"không dấu cách, nhận được '{value}'",
        tag="38/01/01",
        expected="1-19 letters or digits",
        found=value,
    )


def _bad_amount(value: str, why_en: str, why_vi: str) -> VietQRError:
    return VietQRError(
        "bad_amount",
        f"tag 54 (amount): {why_en}, found {value!r}",
        f"Số tiền (trường 54) {why_vi}, nhận được '{value}'",
        tag="54",
        found=value,
    )


def _char_error(tag: str | None, value: str) -> VietQRError:
    """Name the first non-ASCII or non-printable character (vietqr.md §8 rule 1).

    ``tag`` None means ``value`` is a whole payload: the root tag holding the character
    is then looked up so the message can still name it.
    """
    index = next((i for i, c in enumerate(value) if not (c.isascii() and c.isprintable())), 0)
    char = value[index : index + 1]
    if tag is None:
        tag = _root_tag_at(value, index)
        where_en = "payload" + (f" (tag {tag})" if tag else "")
        where_vi = "Mã QR" + (f" (trường {tag})" if tag else "")
    else:
        where_en, where_vi = f"tag {tag}", f"Trường {tag}"
    if not char.isascii():
        return VietQRError(
            "non_ascii",
            f"{where_en}: non-ASCII character {char!r} at position {index}; "
            "expected printable ASCII only",
            f"{where_vi} chứa ký tự ngoài bảng mã ASCII '{char}' ở vị trí {index}; "
            "chỉ được dùng chữ không dấu, chữ số và ký hiệu ASCII",
            tag=tag,
            expected="printable ASCII",
            found=char,
        )
    return VietQRError(
        "non_printable",
        f"{where_en}: control character {char!r} at position {index}; "
        "expected printable ASCII only",
        f"{where_vi} chứa ký tự điều khiển {char!r} ở vị trí {index}",
        tag=tag,
        expected="printable ASCII",
        found=char,
    )


def _too_long(tag: str, value: str, limit: int) -> VietQRError:
    return VietQRError(
        "too_long",
        f"tag {tag}: expected at most {limit} characters, found {len(value)}",
        f"Trường {tag} dài {len(value)} ký tự, vượt quá giới hạn {limit} ký tự",
        tag=tag,
        expected=str(limit),
        found=str(len(value)),
    )


# --------------------------------------------------------------------------- decode


def _parse_level(data: str, parent: str | None) -> dict[str, str]:
    """Split one level of TLV objects into ``{tag: value}`` in payload order.

    vietqr.md §2 and §11.2 rule 1: every ID and length is two digits, no declared
    length runs past the end of the enclosing value (so the loop consumes it exactly),
    and a tag appears once per level. ``parent`` is the tag path of the enclosing
    template, None at root level. Zero-length values are tolerated inside templates
    only: §2 allows lengths 01-99, and real QRs carry "0800" inside 62 (§11.2 rule 5).

    The loop does the minimum per object (two slices, one dict lookup that both
    validates and converts the length); ``_level_error`` re-walks the data to say
    exactly what is wrong only when something is.
    """
    level: dict[str, str] = {}
    length_of = _LENGTH.get
    end_of_data = len(data)
    root = parent is None
    count = 0
    i = 0
    while i < end_of_data:
        tag = data[i : i + 2]
        length = length_of(data[i + 2 : i + 4])
        if length is None or tag not in _LENGTH:
            raise _level_error(data, parent)
        start = i + 4
        i = start + length
        if i > end_of_data or (root and not length):
            raise _level_error(data, parent)
        level[tag] = data[start:i]
        count += 1
    if count != len(level):
        raise _level_error(data, parent)
    return level


def _level_error(data: str, parent: str | None) -> VietQRError:
    """Slow path of ``_parse_level``: find the first defect and describe it."""
    prefix = "" if parent is None else parent + "/"
    where = f"tag {parent}" if parent else "payload"
    where_vi = f"Trường {parent}" if parent else "Mã QR"
    container = f"tag {parent}" if parent else "the payload"
    container_vi = f"trường {parent}" if parent else "mã QR"
    seen: set[str] = set()
    end_of_data = len(data)
    i = 0
    while i < end_of_data:
        header = data[i : i + 4]
        tag = header[:2]
        if len(header) < 4:
            return VietQRError(
                "truncated",
                f"{where}: truncated data object at position {i}: expected at "
                f"least 4 characters (ID and length), found {len(header)}",
                f"{where_vi} bị cắt cụt ở vị trí {i}: cần ít nhất 4 ký tự "
                f"(mã trường và độ dài) nhưng chỉ còn {len(header)}",
                tag=parent,
                expected="4",
                found=str(len(header)),
            )
        if tag not in _LENGTH:
            return VietQRError(
                "bad_tag",
                f"bad tag ID {tag!r} at position {i}"
                + (f" inside tag {parent}" if parent else "")
                + ": expected two digits",
                f"Mã trường '{tag}' ở vị trí {i}"
                + (f" trong trường {parent}" if parent else "")
                + " không hợp lệ: phải gồm hai chữ số",
                tag=parent,
                expected="two digits",
                found=tag,
            )
        path = prefix + tag
        length = _LENGTH.get(header[2:])
        if length is None:
            return VietQRError(
                "bad_length",
                f"tag {path}: length field must be two digits, found {header[2:]!r}",
                f"Trường {path}: độ dài phải gồm hai chữ số, nhận được '{header[2:]}'",
                tag=path,
                expected="two digits",
                found=header[2:],
            )
        if parent is None and not length:
            return VietQRError(
                "empty_value",
                f"tag {path}: expected a value of 1-99 characters, found length 00",
                f"Trường {path} không được để trống (độ dài 00)",
                tag=path,
                expected="01-99",
                found="00",
            )
        start = i + 4
        i = start + length
        if i > end_of_data:
            available = end_of_data - start
            return VietQRError(
                "length_overrun",
                f"tag {path}: declared length {length} runs past the end of {container}: "
                f"expected {length} characters, found {available}",
                f"Trường {path}: độ dài khai báo là {length} ký tự nhưng {container_vi} "
                f"chỉ còn {available} ký tự",
                tag=path,
                expected=str(length),
                found=str(available),
            )
        if tag in seen:
            return VietQRError(
                "duplicate_tag",
                f"tag {path} appears more than once",
                f"Trường {path} xuất hiện nhiều lần",
                tag=path,
                found=tag,
            )
        seen.add(tag)
    raise AssertionError("_level_error called on well-formed data")  # pragma: no cover


def _root_tag_at(payload: str, position: int) -> str | None:
    """The root tag whose object covers ``position``, walking as far as lengths allow."""
    i = 0
    while i + 4 <= len(payload):
        length = _LENGTH.get(payload[i + 2 : i + 4])
        if length is None:
            return None
        if position < i + 4 + length:
            return payload[i : i + 2] if position >= i else None
        i += 4 + length
    return None


def _check_amount_text(amount: str) -> None:
    """Tag 54: digits, optional single trailing '.', non-zero (vietqr.md §7, §11.2 rule 7)."""
    digits = amount[:-1] if amount.endswith(".") else amount
    if not digits or not _DIGITS.issuperset(digits):
        raise _bad_amount(
            amount,
            "expected digits only (no sign, separators or decimals)",
            "chỉ được gồm chữ số (không dấu, không dấu phân cách, không số lẻ)",
        )
    if digits.count("0") == len(digits):
        raise _bad_amount(amount, "expected a non-zero amount", "phải khác 0")


def decode(payload: str) -> VietQR:
    """Parse and validate a VietQR payload (vietqr.md §11.2).

    Only surrounding whitespace is stripped; anything else wrong raises VietQRError.
    Checks run in this order: character set, root framing (00 first, 63 last), CRC, then
    templates and mandatory content, so a corrupted payload is reported as a CRC
    mismatch rather than as whatever garbage its damaged fields happen to contain.
    """
    payload = payload.strip()
    if not payload:
        raise VietQRError("empty_payload", "empty payload", "Mã QR trống")
    # vietqr.md §8 rule 1: libraries disagree on the length of non-ASCII values.
    if not (payload.isascii() and payload.isprintable()):
        raise _char_error(None, payload)

    root = _parse_level(payload, None)
    first = next(iter(root))
    if first != "00":
        raise VietQRError(
            "bad_order",
            f"tag 00 must come first, found tag {first} first",
            f"Trường 00 phải đứng đầu, nhưng mã QR bắt đầu bằng trường {first}",
            tag="00",
            expected="00",
            found=first,
        )
    last = next(reversed(root))
    if last != "63":
        if "63" not in root:
            raise _missing("63")
        raise VietQRError(
            "bad_order",
            f"tag 63 (CRC) must come last, found tag {last} after it",
            f"Trường 63 (CRC) phải đứng cuối, nhưng sau nó còn trường {last}",
            tag="63",
            expected="63 last",
            found=last,
        )
    crc = root["63"]
    if len(crc) != 4:
        raise VietQRError(
            "bad_crc",
            f"tag 63 (CRC): expected length 04, found {len(crc):02d}",
            f"Trường 63 (CRC) phải dài 04 ký tự, nhận được {len(crc):02d}",
            tag="63",
            expected="04",
            found=f"{len(crc):02d}",
        )
    # vietqr.md §6: over everything up to and including "6304"; compare case-insensitively.
    computed = f"{crc_hqx(payload[:-4].encode('ascii'), 0xFFFF):04X}"
    if crc.upper() != computed:
        if not _HEX.issuperset(crc):
            raise VietQRError(
                "bad_crc",
                f"tag 63 (CRC): expected 4 hex digits, found {crc!r}",
                f"Trường 63 (CRC) phải gồm 4 chữ số hex, nhận được '{crc}'",
                tag="63",
                expected="4 hex digits",
                found=crc,
            )
        raise VietQRError(
            "crc_mismatch",
            f"tag 63 (CRC): payload has {crc}, computed {computed}",
            f"Mã CRC không khớp: mã QR ghi {crc}, tính được {computed}",
            tag="63",
            expected=computed,
            found=crc,
        )

    if root["00"] != "01":
        raise _wrong_value(
            "bad_format", "00", "payload format indicator", "chỉ báo định dạng", "01", root["00"]
        )
    initiation = root.get("01")
    if initiation is None:
        raise _missing("01")
    if initiation not in _INITIATIONS:
        raise _wrong_value(
            "bad_initiation",
            "01",
            "point of initiation",
            "phương thức khởi tạo",
            "11 or 12",
            initiation,
            "11 hoặc 12",
        )

    extra: dict[str, str] = {}

    # Tag 38 and its nested 38/01 (vietqr.md §4).
    merchant_raw = root.get("38")
    if merchant_raw is None:
        raise _missing("38")
    merchant = _parse_level(merchant_raw, "38")
    guid = merchant.get("00")
    if guid is None:
        raise _missing("38/00")
    if guid != GUID_NAPAS:
        raise _wrong_value("bad_guid", "38/00", "GUID", "mã định danh GUID", GUID_NAPAS, guid)
    beneficiary_raw = merchant.get("01")
    if beneficiary_raw is None:
        raise _missing("38/01")
    beneficiary = _parse_level(beneficiary_raw, "38/01")
    bin_ = beneficiary.get("00")
    if bin_ is None:
        raise _missing("38/01/00")
    if len(bin_) != 6 or not _DIGITS.issuperset(bin_):
        raise _bad_bin(bin_)
    account = beneficiary.get("01")
    if account is None:
        raise _missing("38/01/01")
    # vietqr.md §4: letters or digits, ≤ 19 (virtual accounts and wallets use letters).
    if not 1 <= len(account) <= 19 or not account.isalnum():
        raise _bad_account(account)
    service = merchant.get("02")
    if len(merchant) > (2 if service is None else 3):
        for tag, value in merchant.items():
            if tag not in ("00", "01", "02"):
                extra["38/" + tag] = value
    if len(beneficiary) > 2:
        for tag, value in beneficiary.items():
            if tag not in ("00", "01"):
                extra["38/01/" + tag] = value

    currency = root.get("53")
    if currency is None:
        raise _missing("53")
    if currency != CURRENCY_VND:
        raise _wrong_value(
            "bad_currency", "53", "currency", "mã tiền tệ", f"{CURRENCY_VND} (VND)", currency
        )
    country = root.get("58")
    if country is None:
        raise _missing("58")
    if country != COUNTRY_VN:
        raise _wrong_value("bad_country", "58", "country", "mã quốc gia", COUNTRY_VN, country)
    amount = root.get("54")
    if amount is not None:
        _check_amount_text(amount)

    additional_raw = root.get("62")
    additional_data: dict[str, str] | None = None
    if additional_raw is not None:
        # Empty sub-values such as "0800" are kept as "" (vietqr.md §11.2 rule 5).
        additional_data = _parse_level(additional_raw, "62")

    unknown = root.keys() - _ROOT_KNOWN
    if unknown:  # kept raw in payload order: 64, 80-99, 15, ... (vietqr.md §3)
        for tag, value in root.items():
            if tag in unknown:
                extra[tag] = value

    return VietQR(
        point_of_initiation=initiation,
        guid=guid,
        bin=bin_,
        account=account,
        service=service,
        mcc=root.get("52"),
        currency=currency,
        amount=amount,
        country=country,
        merchant_name=root.get("59"),
        city=root.get("60"),
        additional_data=additional_data,
        crc=crc,
        extra=extra,
    )


# --------------------------------------------------------------------------- encode


def _check_text(tag: str, value: object, limit: int, *, allow_empty: bool = False) -> str:
    """ANS value check shared by every tag: printable ASCII, 1..limit characters."""
    if not isinstance(value, str):
        raise VietQRError(
            "bad_type",
            f"tag {tag}: expected a string, found {type(value).__name__}",
            f"Trường {tag} phải là chuỗi ký tự, nhận được kiểu {type(value).__name__}",
            tag=tag,
            expected="str",
            found=type(value).__name__,
        )
    if not (value.isascii() and value.isprintable()):
        raise _char_error(tag, value)
    if len(value) > limit:
        raise _too_long(tag, value, limit)
    if not value and not allow_empty:
        raise VietQRError(
            "empty_value",
            f"tag {tag}: expected a value of 1-{limit} characters, found an empty string",
            f"Trường {tag} không được để trống",
            tag=tag,
            expected=f"1-{limit}",
            found="",
        )
    return value


def _template(tag: str, objects: list[tuple[str, str]]) -> str:
    """Join sub-objects in ascending tag order and check the template fits in 99."""
    objects.sort()
    value = "".join(t + _LENGTH_STR[len(v)] + v for t, v in objects)
    if len(value) > 99:
        raise _too_long(tag, value, 99)
    return value


def encode(fields: VietQR | None = None, /, **kwargs: Unpack[VietQRFields]) -> str:
    """Encode a VietQR payload: ascending tag order at every level, uppercase CRC.

    Pass a ``VietQR`` (for example one returned by ``decode``) or its fields as keyword
    arguments. This is the low-level encoder: values are written verbatim (case
    included) after validation, so every valid vector of vectors.json round-trips.
    Callers building a QR from free text want ``build_payment_qr``, which folds the
    purpose first. ``crc`` is ignored: the CRC is always recomputed.
    """
    if fields is None:
        fields = VietQR(**kwargs)
    elif kwargs:
        raise TypeError("encode() takes either a VietQR or keyword arguments, not both")

    guid = fields.guid
    if guid != GUID_NAPAS:
        raise _wrong_value("bad_guid", "38/00", "GUID", "mã định danh GUID", GUID_NAPAS, guid)
    bin_ = fields.bin
    if not isinstance(bin_, str) or len(bin_) != 6 or not _DIGITS.issuperset(bin_):
        raise _bad_bin(str(bin_))
    account = fields.account
    # isascii() first: str.isalnum() also accepts Vietnamese letters and other scripts.
    if (
        not isinstance(account, str)
        or not 1 <= len(account) <= 19
        or not account.isascii()
        or not account.isalnum()
    ):
        raise _bad_account(str(account))
    service = fields.service
    if service not in _SERVICES:
        raise _wrong_value(
            "bad_service",
            "38/02",
            "service code",
            "mã dịch vụ",
            f"{SERVICE_ACCOUNT} or {SERVICE_CARD}",
            str(service),
            f"{SERVICE_ACCOUNT} hoặc {SERVICE_CARD}",
        )
    if fields.currency != CURRENCY_VND:
        raise _wrong_value(
            "bad_currency",
            "53",
            "currency",
            "mã tiền tệ",
            f"{CURRENCY_VND} (VND)",
            str(fields.currency),
        )
    if fields.country != COUNTRY_VN:
        raise _wrong_value(
            "bad_country", "58", "country", "mã quốc gia", COUNTRY_VN, str(fields.country)
        )

    amount = fields.amount
    if amount is not None:
        if not isinstance(amount, str):
            raise _bad_amount(
                repr(amount),
                "expected a string of digits (use build_payment_qr for an integer amount)",
                "phải là chuỗi chữ số",
            )
        _check_amount_text(amount)
        if len(amount) > 13:  # tag 54 is at most 13 characters (vietqr.md §3)
            raise _too_long("54", amount, 13)
        if int(amount[:-1] if amount.endswith(".") else amount) > AMOUNT_MAX_VND:
            raise _amount_range_error(amount)

    initiation = fields.point_of_initiation
    if initiation is None:
        # vietqr.md §7: 12 whenever an amount is present, else 11 (vietnam-qr-pay #5).
        initiation = STATIC if amount is None else DYNAMIC
    elif initiation not in _INITIATIONS:
        raise _wrong_value(
            "bad_initiation",
            "01",
            "point of initiation",
            "phương thức khởi tạo",
            "11 or 12",
            str(initiation),
            "11 hoặc 12",
        )

    # Tag 38 (vietqr.md §4): 00 GUID, 01 {00 BIN, 01 account}, 02 service.
    beneficiary = "0006" + bin_ + "01" + _LENGTH_STR[len(account)] + account
    merchant_tail = "0208" + service
    extra = fields.extra
    root_extra: list[tuple[str, str]] = []
    if extra:
        beneficiary, merchant_tail = _merge_template_extras(
            extra, beneficiary, merchant_tail, root_extra
        )
    merchant = "0010" + GUID_NAPAS + "01" + _LENGTH_STR[len(beneficiary)] + beneficiary
    merchant += merchant_tail
    if len(merchant) > 99:
        raise _too_long("38", merchant, 99)

    tail = ""  # tags after 38, built in ascending order
    mcc = fields.mcc
    if mcc is not None:
        if not isinstance(mcc, str) or len(mcc) != 4 or not _DIGITS.issuperset(mcc):
            raise _wrong_value(
                "bad_mcc",
                "52",
                "merchant category code",
                "mã ngành hàng",
                "4 digits",
                str(mcc),
                "4 chữ số",
            )
        tail += "5204" + mcc
    tail += "5303704"
    if amount is not None:
        tail += "54" + _LENGTH_STR[len(amount)] + amount
    tail += "5802VN"
    name = fields.merchant_name
    if name is not None:
        tail += "59" + _LENGTH_STR[len(_check_text("59", name, 25))] + name
    city = fields.city
    if city is not None:
        tail += "60" + _LENGTH_STR[len(_check_text("60", city, 15))] + city
    additional = fields.additional_data
    if additional is not None:
        value = _encode_additional_data(additional)
        tail += "62" + _LENGTH_STR[len(value)] + value

    body = "000201" + "01" + "02" + initiation + "38" + _LENGTH_STR[len(merchant)] + merchant
    if root_extra:
        body = _merge_root_extras(body, tail, root_extra)
    else:
        body += tail
    body += "6304"
    return f"{body}{crc_hqx(body.encode('ascii'), 0xFFFF):04X}"


def _amount_range_error(amount: str) -> VietQRError:
    return VietQRError(
        "bad_amount",
        f"tag 54 (amount): expected 1 to {AMOUNT_MAX_VND:,} VND (NAPAS247 limit), found {amount}",
        # Vietnamese groups thousands with dots: 499.999.999 đồng.
        f"Số tiền (trường 54) phải từ 1 đến {AMOUNT_MAX_VND:,} đồng ".replace(",", ".")
        + f"(hạn mức NAPAS247), nhận được {amount}",
        tag="54",
        expected=f"1..{AMOUNT_MAX_VND}",
        found=amount,
    )


# Purpose and the other 62 sub-fields are ANS ≤ 25; 09 is ≤ 3 (vietqr.md §5).
_ADDITIONAL_MAX = {f"{n:02d}": 25 for n in range(1, 9)} | {"09": 3}


def _encode_additional_data(additional: Mapping[str, str]) -> str:
    if not additional:
        raise VietQRError(
            "empty_template",
            "tag 62: expected at least one sub-tag, found none (omit the tag instead)",
            "Trường 62 phải chứa ít nhất một trường con",
            tag="62",
            expected="1+ sub-tags",
            found="0",
        )
    objects: list[tuple[str, str]] = []
    for tag, value in additional.items():
        if tag not in _LENGTH:
            raise _bad_key("62/" + str(tag))
        path = "62/" + tag
        # Empty sub-values are legal inside templates (vietqr.md §11.2 rule 5), so a
        # decoded "0800" re-encodes verbatim.
        objects.append(
            (tag, _check_text(path, value, _ADDITIONAL_MAX.get(tag, 99), allow_empty=True))
        )
    return _template("62", objects)


def _bad_key(key: str) -> VietQRError:
    return VietQRError(
        "bad_tag",
        f"bad tag path {key!r}: expected two-digit IDs such as '80', '38/03' or '62/08'",
        f"Mã trường '{key}' không hợp lệ: phải gồm hai chữ số, ví dụ '80', '38/03', '62/08'",
        tag=key,
        expected="two-digit tag",
        found=key,
    )


def _merge_template_extras(
    extra: Mapping[str, str],
    beneficiary: str,
    merchant_tail: str,
    root_extra: list[tuple[str, str]],
) -> tuple[str, str]:
    """Place ``extra`` entries at their level; fills ``root_extra`` for the root."""
    beneficiary_objects: list[tuple[str, str]] = []
    merchant_objects: list[tuple[str, str]] = []
    for key, value in extra.items():
        if not isinstance(key, str):
            raise _bad_key(repr(key))
        if key.startswith("38/01/"):
            tag, level, reserved, allow_empty = key[6:], beneficiary_objects, ("00", "01"), True
        elif key.startswith("38/"):
            tag, level, reserved, allow_empty = key[3:], merchant_objects, ("00", "01", "02"), True
        else:
            tag, level, reserved, allow_empty = key, root_extra, tuple(_ROOT_KNOWN), False
        if tag not in _LENGTH:
            raise _bad_key(key)
        if tag in reserved:
            raise VietQRError(
                "duplicate_tag",
                f"extra[{key!r}] duplicates a tag that has its own field",
                f"Khóa '{key}' trong extra trùng với một trường đã có thuộc tính riêng",
                tag=key,
                found=key,
            )
        level.append((tag, _check_text(key, value, 99, allow_empty=allow_empty)))
    if beneficiary_objects:
        beneficiary_objects += [("00", beneficiary[4:10]), ("01", beneficiary[14:])]
        beneficiary = _template("38/01", beneficiary_objects)
    if merchant_objects:
        merchant_objects.append(("02", merchant_tail[4:]))
        merchant_objects.sort()
        # 00 and 01 are emitted before this tail by the caller; every merchant extra
        # sorts after them because 00/01/02 are reserved.
        merchant_tail = "".join(t + _LENGTH_STR[len(v)] + v for t, v in merchant_objects)
    return beneficiary, merchant_tail


def _merge_root_extras(head: str, tail: str, root_extra: list[tuple[str, str]]) -> str:
    """Insert extra root tags at their ascending position among 38..62."""
    objects = list(_parse_level(head[12:] + tail, None).items()) + root_extra
    objects.sort()
    return head[:12] + "".join(t + _LENGTH_STR[len(v)] + v for t, v in objects)


# --------------------------------------------------------------------------- high level


_NOT_FOLDED = re.compile(r"[^A-Z0-9 ]+")


def fold_purpose(text: str, limit: int = PURPOSE_MAX) -> str:
    """Fold free text into a transfer note bank apps accept (vietqr.md §8 rule 2).

    Đ/đ first (NFKD does not decompose them, §8 rule 3), strip combining marks,
    uppercase, every character outside [A-Z0-9 ] becomes a space, collapse and trim,
    cut to ``limit`` (25; 19 for VietQR.vn flows) and trim again. Truncation hits the
    end, so callers put the payment code first (§8, §12.2).
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    mapped = text.replace("Đ", "D").replace("đ", "d")
    decomposed = unicodedata.normalize("NFKD", mapped)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    spaced = _NOT_FOLDED.sub(" ", stripped.upper())
    folded = " ".join(spaced.split())[:limit].strip()
    if not folded:
        raise VietQRError(
            "empty_purpose",
            f"purpose {text!r} is empty after folding to [A-Z0-9 ]",
            f"Nội dung chuyển khoản '{text}' trống sau khi bỏ dấu và ký tự đặc biệt",
            tag="62/08",
            expected=f"[A-Z0-9 ]{{1,{limit}}}",
            found=text,
        )
    return folded


def build_payment_qr(
    *,
    bin: str,
    account: str,
    amount_vnd: int | None,
    purpose: str,
    service: str = SERVICE_ACCOUNT,
    bank_bins: Collection[str] | None = None,
    purpose_limit: int = PURPOSE_MAX,
) -> str:
    """Build the payload market40 prints or shows: minimal form, purpose in 62/08.

    ``amount_vnd`` None gives a static QR (01=11) for a placard; an amount gives a
    dynamic one (01=12) (vietqr.md §7). ``bank_bins`` is the set of BINs from
    banks.json: membership is the test, never a 9704 prefix (vietqr.md §9).
    """
    if not isinstance(bin, str) or len(bin) != 6 or not _DIGITS.issuperset(bin):
        raise _bad_bin(str(bin))
    if bank_bins is not None and bin not in bank_bins:
        raise VietQRError(
            "unknown_bin",
            f"tag 38/01/00 (bank BIN): {bin} is not in the bank list",
            f"Mã BIN {bin} không có trong danh sách ngân hàng",
            tag="38/01/00",
            expected="a BIN from banks.json",
            found=bin,
        )
    amount: str | None = None
    if amount_vnd is not None:
        if isinstance(amount_vnd, bool) or not isinstance(amount_vnd, int):
            raise _bad_amount(
                repr(amount_vnd), "expected an integer number of đồng", "phải là số nguyên đồng"
            )
        if not 1 <= amount_vnd <= AMOUNT_MAX_VND:
            raise _amount_range_error(str(amount_vnd))
        amount = str(amount_vnd)
    folded = fold_purpose(purpose, purpose_limit)
    return encode(
        VietQR(
            bin=bin,
            account=account,
            service=service,
            amount=amount,
            additional_data={"08": folded},
        )
    )


# --------------------------------------------------------------------------- bank list


@dataclass(frozen=True, slots=True)
class Bank:
    """One entry of banks.json (vietqr.io /v2/banks item shape, vietqr.md §9)."""

    bin: str
    code: str
    short_name: str
    name: str
    transfer_supported: bool  # the bank's app can pay by scanning a VietQR


def load_bank_list(path: str | PathLike[str]) -> dict[str, Bank]:
    """Read a banks.json-shaped file into ``{bin: Bank}``.

    Accepts ``{"data": [...]}`` (our file and the vietqr.io response) or a bare list.
    When a BIN appears twice the later entry wins: banks.json lists a renamed bank's
    current name after its old one (970414 Oceanbank → MBV, 970406 DongA → Vikki, §9).
    """
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    entries = document["data"] if isinstance(document, dict) else document
    banks: dict[str, Bank] = {}
    for entry in entries:
        bin_ = str(entry["bin"])
        if len(bin_) != 6 or not _DIGITS.issuperset(bin_):
            raise _bad_bin(bin_)
        banks[bin_] = Bank(
            bin=bin_,
            code=str(entry.get("code") or ""),
            short_name=str(entry.get("shortName") or entry.get("short_name") or ""),
            name=str(entry.get("name") or ""),
            transfer_supported=bool(entry.get("transferSupported")),
        )
    return banks
