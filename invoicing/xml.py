"""Unsigned e-invoice XML (`HDon`, PBan 2.1.0) and a safe reader for invoice XML.

Pure module: no Django. References are to shared/spec/einvoice.md.

`build_invoice_xml` writes the document the seller signs (§3.1, §11 step 1):

    HDon (no namespace, no attributes)
    ├─ DLHDon @Id: TTChung, NDHDon (NBan, NMua, DSHHDVu/HHDVu+, TToan)
    └─ DSCKS: NBan (empty: signing.py puts the Signature here), NMua (empty), CCKSKhac (empty)

in UTF-8 on one line (§3.1 "Serialisation"); `DLQRCode` and `MCCQT` are left out (§4.8: the
tax authority adds `MCCQT`). Elements follow the order of the §4 tables, which is the order of
the real invoices. Amounts are integer đồng, written as plain digits; quantities, unit prices
and discount rates are `Decimal`s written without exponent or trailing zeros (§3.2).

Inputs are validated as they are written; the first problem raises `InvoiceDataError` with an
English message, `message_vi` and the XML path of the field. The text is written directly (no
element tree), exactly as lxml would serialise the tree; `build_unsigned_invoice` also returns
DLHDon in canonical form, so that `signing.sign_invoice` need not parse the invoice again.
What repeats from one invoice of a run to the next (the seller block, TTChung but its number,
the text of a line object) is checked and written once.

`safe_parse` reads untrusted invoice XML (no DTD, no entities, size limit; `signing` reads with
it too) and `parse_invoice_summary` extracts the key fields and re-adds the totals (§10, §8.4
rule 9).
"""

from __future__ import annotations

import os
import re
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from lxml import etree

from invoicing.rounding import (
    RATE_CODES,
    SalesTotals,
    VatBreakdown,
    rate_percent,
    round_vnd,
)
from invoicing.words import MAX_AMOUNT_VND, amount_in_words, normalise_words_for_comparison

__all__ = [
    "DEFAULT_MAX_XML_BYTES",
    "FORMAT_VERSION",
    "AuthorisedIssuer",
    "Buyer",
    "ExtraField",
    "InvoiceData",
    "InvoiceDataError",
    "InvoiceLine",
    "InvoiceXmlError",
    "RelatedInvoice",
    "Seller",
    "UnsafeXmlError",
    "UnsignedInvoice",
    "build_invoice_xml",
    "build_unsigned_invoice",
    "new_invoice_id",
    "parse_invoice_summary",
    "safe_parse",
    "safe_parser",
]

FORMAT_VERSION = "2.1.0"  # PBan, Decree 70/2025 + Circular 32/2025 (§2)
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>'
# Our invoices are ~5-15 KB and a 202 message wraps one of them; 2 MiB leaves ample room for
# hundreds of lines while keeping a hostile upload cheap to refuse.
DEFAULT_MAX_XML_BYTES = 2 * 1024 * 1024

INVOICE_TITLES = {"1": "Hóa đơn giá trị gia tăng", "2": "Hóa đơn bán hàng"}  # THDon (§4.1)

_SERIAL = re.compile(r"[CK]\d{2}[TDLMNBGHXF][A-Z]{2}")  # §5.2
_TAX_CODE = re.compile(r"\d{10}(?:-\d{3})?")  # §4.4: 10 digits or the 10-3 branch form
_CITIZEN_ID = re.compile(r"\d{12}")  # CCCDan
_NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]*")  # §6.2 pitfall 6
# Not allowed in XML 1.0, or would break the one-line layout (§3.1): control characters
# (line breaks and tabs included), lone surrogates, U+FFFE/U+FFFF.
_FORBIDDEN_CHARS = re.compile("[\x00-\x1f\x7f\ud800-\udfff\ufffe\uffff]")
_MAX_NUMBER = 99_999_999  # SHDon: at most 8 digits (§5.3)
_AMOUNT_LIMIT = 10**21  # amounts have at most 21 digits (§3.2)
_EXTRA_KINDS = ("string", "numeric", "dateTime", "date")  # KDLieu (§4.3)
_SUPPORTED_LINE_KINDS = (1, 3, 4)  # TChat: goods/service, trade discount, note (§4.6)


# ---------------------------------------------------------------------------------------------
# Errors


class InvoiceDataError(ValueError):
    """Invoice data that cannot be written (or read) as a valid e-invoice.

    `str(error)` is English; `message_vi` is the Vietnamese message for users; `field` is the
    XML path of the offending element when there is one (e.g. "NDHDon/NBan/MST").
    """

    def __init__(self, message: str, *, message_vi: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.message_vi = message_vi
        self.field = field


class InvoiceXmlError(InvoiceDataError):
    """Invoice XML that is malformed or lacks a required element."""


class UnsafeXmlError(InvoiceXmlError):
    """Invoice XML refused before use: too large, or has a DOCTYPE / entity declarations."""


def _field_error(path: str, english: str, vietnamese: str) -> InvoiceDataError:
    return InvoiceDataError(f"{path}: {english}", message_vi=f"{path}: {vietnamese}", field=path)


# ---------------------------------------------------------------------------------------------
# Input data


@dataclass(frozen=True)
class ExtraField:
    """One `TTKhac/TTin`: TTruong (name), KDLieu (kind), DLieu (value) (§4.3).

    `value` may be a str (written as is), an int or Decimal (kind "numeric"), a date ("date")
    or a naive datetime ("dateTime", written YYYY-MM-DDThh:mm:ss, §3.2).
    """

    name: str
    kind: Literal["string", "numeric", "dateTime", "date"]
    value: str | int | Decimal | date


# Extension entries may also be given as (name, kind, value) tuples.
Extras = Sequence[ExtraField | tuple[str, str, Any]]


@dataclass(frozen=True, kw_only=True)
class Seller:
    """`NDHDon/NBan` (§4.4)."""

    name: str  # Ten
    tax_code: str  # MST
    address: str  # DChi
    store_code: str | None = None  # MCHang: market / stall-area code
    store_name: str | None = None  # TCHang: market name
    phone: str | None = None  # SDThoai
    email: str | None = None  # DCTDTu
    bank_account: str | None = None  # STKNHang
    bank_name: str | None = None  # TNHang
    fax: str | None = None  # Fax
    website: str | None = None  # Website
    extra: Extras = ()  # TTKhac


@dataclass(frozen=True, kw_only=True)
class Buyer:
    """`NDHDon/NMua` (§4.5). Every field is "if any"; a stall holder without a tax code gets
    `name` + `personal_name` and `citizen_id`."""

    name: str | None = None  # Ten
    tax_code: str | None = None  # MST
    budget_unit_code: str | None = None  # MDVQHNSach
    address: str | None = None  # DChi
    buyer_code: str | None = None  # MKHang
    phone: str | None = None  # SDThoai
    citizen_id: str | None = None  # CCCDan
    passport: str | None = None  # SHChieu
    email: str | None = None  # DCTDTu
    personal_name: str | None = None  # HVTNMHang
    bank_account: str | None = None  # STKNHang
    bank_name: str | None = None  # TNHang
    extra: Extras = ()  # TTKhac


@dataclass(frozen=True, kw_only=True)
class InvoiceLine:
    """`DSHHDVu/HHDVu` (§4.6).

    `net_amount_vnd` is ThTien before VAT (from `rounding.vat_inclusive_breakdown` on a VAT
    invoice), positive even for a trade discount (kind 3). `vat_rate` is TSuat on a VAT
    invoice and must be None on a sales invoice. Kind 4 (note) lines carry only a name.
    """

    number: int  # STT
    name: str  # THHDVu
    net_amount_vnd: int | None = None  # ThTien
    unit: str | None = None  # DVTinh
    quantity: Decimal | int | None = None  # SLuong
    unit_price: Decimal | int | None = None  # DGia (before VAT)
    vat_rate: str | None = None  # TSuat
    code: str | None = None  # MHHDVu
    kind: int = 1  # TChat
    discount_rate: Decimal | int | None = None  # TLCKhau, percent
    discount_amount_vnd: int | None = None  # STCKhau
    extra: Extras = ()  # TTKhac


@dataclass(frozen=True, kw_only=True)
class RelatedInvoice:
    """`TTChung/TTHDLQuan` for a replacement (nature 1) or adjustment (nature 2) (§4.2)."""

    nature: int  # TCHDon: 1 replaces, 2 adjusts
    form: str  # KHMSHDCLQuan
    serial: str  # KHHDCLQuan
    number: int | str  # SHDCLQuan; a str is written as given (e.g. "00001100")
    issue_date: date  # NLHDCLQuan
    kind: int = 1  # LHDCLQuan: 1 = e-invoice under Decree 123
    note: str | None = None  # GChu: the reason


@dataclass(frozen=True, kw_only=True)
class AuthorisedIssuer:
    """The party issuing on the seller's behalf (ủy nhiệm, §4.1, §13.4)."""

    tax_code: str  # MSTDVNUNLHDon
    name: str  # TDVNUNLHDon
    address: str  # DCDVNUNLHDon


@dataclass(frozen=True, kw_only=True)
class InvoiceData:
    """Everything `build_invoice_xml` writes.

    `totals` is a `VatBreakdown` for form "1" and a `SalesTotals` for form "2" (rounding.py).
    `amount_in_words` defaults to `words.amount_in_words(total payable)`; when given, it must
    read the same amount (suffix style aside).
    """

    invoice_id: str  # DLHDon/@Id, an NCName such as new_invoice_id()
    form: str  # KHMSHDon: "1" VAT invoice, "2" sales invoice
    serial: str  # KHHDon
    number: int  # SHDon
    issue_date: date  # NLap
    seller: Seller
    buyer: Buyer
    lines: Sequence[InvoiceLine]
    totals: VatBreakdown | SalesTotals
    provider_tax_code: str  # MSTTCGP
    amount_in_words: str | None = None  # TgTTTBChu
    currency: str = "VND"  # DVTTe; only VND is supported (TGia is then 1)
    payment_method: str = "Chuyển khoản"  # HTTToan: free text (§4.1)
    authorised_issuer: AuthorisedIssuer | None = None
    related: RelatedInvoice | None = None  # TTHDLQuan
    extra: Extras = ()  # TTChung/TTKhac
    totals_extra: Extras = ()  # TToan/TTKhac


def new_invoice_id() -> str:
    """A fresh DLHDon Id, `DLHDon-<uuid4>` (§11 step 1; an NCName, §6.2 pitfall 6)."""
    # uuid.uuid4(), formatted without building a UUID object (one per invoice).
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"DLHDon-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# ---------------------------------------------------------------------------------------------
# Value checks and formatting


def _text(value: object, path: str, max_length: int, *, required: bool = False) -> str | None:
    """A single-line string field, NFC-normalised; None when absent and optional."""
    if value is None or value == "":
        if required:
            raise _field_error(path, "is required", "là trường bắt buộc")
        return None
    if not isinstance(value, str):
        raise _field_error(path, f"must be text, not {type(value).__name__}", "phải là chuỗi ký tự")
    text = unicodedata.normalize("NFC", value)
    if not text.strip():
        if required:
            raise _field_error(path, "is required", "là trường bắt buộc")
        return None
    # Every forbidden character is non-printable: most text is settled by the cheaper test.
    if not text.isprintable() and _FORBIDDEN_CHARS.search(text):
        raise _field_error(
            path,
            "contains a line break, tab or control character; invoice fields are single-line",
            "chứa ký tự xuống dòng, tab hoặc ký tự điều khiển; trường hóa đơn phải trên một dòng",
        )
    if len(text) > max_length:
        raise _field_error(
            path,
            f"is {len(text)} characters long; at most {max_length} are allowed",
            f"dài {len(text)} ký tự; tối đa {max_length} ký tự",
        )
    return text


def _tax_code(value: object, path: str, *, required: bool) -> str | None:
    text = _text(value, path, 14, required=required)
    if text is not None and not _TAX_CODE.fullmatch(text):
        raise _field_error(
            path,
            f"tax code {text!r} must be 10 digits or 10 digits-3 digits (e.g. 0102182292-998)",
            f"mã số thuế {text!r} phải gồm 10 chữ số hoặc 10 chữ số-3 chữ số",
        )
    return text


def _amount(value: object, path: str) -> str:
    """Whole đồng, >= 0, as plain digits (§3.2, §10)."""
    if type(value) is int and 0 <= value < _AMOUNT_LIMIT:  # the usual case, settled at once
        return str(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _field_error(
            path,
            f"must be an int number of đồng, not {type(value).__name__}",
            "phải là số nguyên đồng",
        )
    if value < 0:
        raise _field_error(path, f"must not be negative: {value}", f"không được âm: {value}")
    text = str(value)
    if len(text) > 21:
        raise _field_error(path, "has more than 21 digits", "có quá 21 chữ số")
    return text


def _decimal(value: object, path: str, *, precision: int = 21, scale: int = 6) -> str:
    """A non-negative number (p, s) written without exponent or trailing zeros (§3.2)."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _field_error(
            path,
            f"must be an int or Decimal, not {type(value).__name__}",
            "phải là số nguyên hoặc số thập phân (Decimal)",
        )
    number = Decimal(value)
    if not number.is_finite() or number < 0:
        raise _field_error(
            path, f"must be a finite number >= 0, not {number}", f"phải là số >= 0: {number}"
        )
    if number == 0:
        return "0"
    text = format(number.normalize(), "f")
    whole, _, fraction = text.partition(".")
    if len(fraction) > scale:
        raise _field_error(
            path,
            f"{text} has more than {scale} decimal places",
            f"{text} có quá {scale} chữ số thập phân",
        )
    if len(whole.lstrip("0")) + len(fraction) > precision:
        raise _field_error(
            path, f"{text} has more than {precision} digits", f"{text} có quá {precision} chữ số"
        )
    return text


def _plain_date(value: object, path: str) -> date:
    if isinstance(value, datetime) or not isinstance(value, date):
        raise _field_error(
            path,
            f"must be a date (not a datetime), got {type(value).__name__}",
            "phải là ngày (date)",
        )
    return value


def _serial(value: object, path: str, issue_date: date) -> str:
    text = _text(value, path, 6, required=True)
    assert text is not None
    if not _SERIAL.fullmatch(text):
        raise _field_error(
            path,
            f"serial {text!r} must match [C|K]YY<kind letter><2 capital letters>, e.g. C25TAA",
            f"ký hiệu {text!r} phải có dạng [C|K]YY<chữ loại hóa đơn><2 chữ cái in hoa>, vd C25TAA",
        )
    if int(text[1:3]) != issue_date.year % 100:
        raise _field_error(
            path,
            f"serial {text!r} is for year 20{text[1:3]}, but the issue date is {issue_date}",
            f"ký hiệu {text!r} thuộc năm 20{text[1:3]} nhưng ngày lập là {issue_date}",
        )
    return text


# ---------------------------------------------------------------------------------------------
# Writing
#
# The document is written as text, field by field, instead of as an lxml tree that is then
# serialised: the issuance path builds one invoice per RSA signature, and a tree cost more
# than the signature itself. The text is exactly what lxml writes for the same tree (the golden
# files were made by lxml, and the tests compare both on hostile text):
#
# * text escapes `&`, `<` and `>` only; everything else, Vietnamese included, is raw UTF-8
#   (`_text` has already refused what XML 1.0 cannot hold and line breaks, §3.1);
# * an element with no content is self-closed (`<NMua/>`); one with empty text is not
#   (`<DLieu></DLieu>`);
# * the one attribute, DLHDon/@Id, is an NCName and needs no escaping.


def _escape(text: str) -> str:
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _add(out: list[str], tag: str, text: str | None) -> None:
    """Write <tag>text</tag>; optional fields that are absent are left out entirely."""
    if text is not None:
        out.append(f"<{tag}>{_escape(text)}</{tag}>")


def _close(out: list[str], tag: str, start: int) -> None:
    """End the element whose start tag is `out[start]`: self-closed if nothing was written
    inside it (lxml's serialisation of an element with no text and no children)."""
    if len(out) == start + 1:
        out[start] = f"<{tag}/>"
    else:
        out.append(f"</{tag}>")


def _extra_value(kind: str, value: object, path: str) -> str:
    if isinstance(value, str):
        text = _text(value, path, 10_000)
        return text or ""
    if kind == "numeric":
        return _decimal(value, path, scale=28, precision=56)
    if kind == "dateTime" and isinstance(value, datetime):
        if value.tzinfo is not None:
            # §3.2: local Vietnam time, no offset.
            raise _field_error(
                path,
                "dateTime must be naive local time",
                "ngày giờ phải là giờ Việt Nam, không kèm múi giờ",
            )
        return value.replace(microsecond=0).isoformat()
    if kind == "date" and isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    raise _field_error(
        path,
        f"value {value!r} does not fit data kind {kind!r}",
        f"giá trị {value!r} không khớp kiểu dữ liệu {kind!r}",
    )


# The extension names of a run are few ("Sạp/ki-ốt", "Mã thanh toán"…): the start of a TTin,
# once its name and kind are checked, is kept by (name, kind) when both are plain str.
_EXTRA_HEADS: dict[tuple[str, str], str] = {}
_EXTRA_HEADS_MAX = 256


def _add_extras(out: list[str], extras: Extras, path: str) -> None:
    """TTKhac with one TTin per entry (§4.3); nothing when there are no entries."""
    if not extras:
        return
    out.append("<TTKhac>")
    for position, entry in enumerate(extras, start=1):
        entry_path = f"{path}/TTKhac/TTin[{position}]"
        if isinstance(entry, ExtraField):
            name, kind, value = entry.name, entry.kind, entry.value
        elif isinstance(entry, tuple) and len(entry) == 3:
            name, kind, value = entry
        else:
            raise _field_error(
                entry_path,
                "must be an ExtraField or a (name, kind, value) tuple",
                "phải là ExtraField hoặc bộ (tên, kiểu, giá trị)",
            )
        plain = type(name) is str and type(kind) is str
        head = _EXTRA_HEADS.get((name, kind)) if plain else None
        if head is None:
            if kind not in _EXTRA_KINDS:
                raise _field_error(
                    f"{entry_path}/KDLieu",
                    f"data kind {kind!r} is not one of {_EXTRA_KINDS}",
                    f"kiểu dữ liệu {kind!r} không thuộc {_EXTRA_KINDS}",
                )
            text = _text(name, f"{entry_path}/TTruong", 100, required=True)
            assert text is not None
            head = f"<TTin><TTruong>{_escape(text)}</TTruong><KDLieu>{kind}</KDLieu>"
            if plain:
                if len(_EXTRA_HEADS) >= _EXTRA_HEADS_MAX:
                    _EXTRA_HEADS.clear()
                _EXTRA_HEADS[(name, kind)] = head
        value_text = _extra_value(kind, value, f"{entry_path}/DLieu")
        out.append(f"{head}<DLieu>{_escape(value_text)}</DLieu></TTin>")
    out.append("</TTKhac>")


# ---------------------------------------------------------------------------------------------
# Builder


@dataclass(frozen=True, slots=True)
class UnsignedInvoice:
    """An unsigned `HDon` (`xml`) with what the seller's signature needs from it (§6.1), so
    that the signer does not have to parse it again (`signing.sign_invoice` takes it as is)."""

    xml: bytes
    invoice_id: str  # DLHDon/@Id
    seller_tax_code: str  # NDHDon/NBan/MST, to match the certificate's
    # DLHDon in inclusive C14N 1.0, the bytes its Reference digests. The document has no
    # namespace and HDon no attribute, so it is DLHDon as written with every self-closed
    # element expanded.
    dlhdon_c14n: bytes
    amount_in_words: str  # TgTTTBChu as written


_EMPTY_SIGNATURES = b"<DSCKS><NBan/><NMua/><CCKSKhac/></DSCKS></HDon>"
_SELF_CLOSED = re.compile(rb"<([A-Za-z][A-Za-z0-9]*)/>")


def build_invoice_xml(data: InvoiceData, *, xml_declaration: bool = True) -> bytes:
    """The unsigned `HDon` as UTF-8 bytes on one line, ready for signing.

    The XML declaration (`<?xml version="1.0" encoding="UTF-8"?>`, as vendor files write it,
    §3.1) can be left out with `xml_declaration=False`, e.g. to embed the invoice in a TDiep.
    Raises `InvoiceDataError` on the first invalid or inconsistent field.
    """
    return build_unsigned_invoice(data, xml_declaration=xml_declaration).xml


def build_unsigned_invoice(data: InvoiceData, *, xml_declaration: bool = True) -> UnsignedInvoice:
    """`build_invoice_xml`, with the signed part in canonical form and the seller's MST."""
    if not isinstance(data, InvoiceData):
        raise TypeError(f"build_invoice_xml takes InvoiceData, not {type(data).__name__}")
    invoice_id = _text(data.invoice_id, "DLHDon/@Id", 100, required=True)
    assert invoice_id is not None
    if not _NCNAME.fullmatch(invoice_id):
        raise _field_error(
            "DLHDon/@Id",
            f"{invoice_id!r} must be an XML NCName (a letter or _ first), e.g. DLHDon-<uuid>",
            f"{invoice_id!r} phải là NCName (bắt đầu bằng chữ cái hoặc _), vd DLHDon-<uuid>",
        )
    out = [f'<DLHDon Id="{invoice_id}">']
    _build_general(out, data)
    out.append("<NDHDon>")
    seller_tax_code = _build_seller(out, data.seller)
    _build_buyer(out, data.buyer)
    net_by_rate = _build_lines(out, data)
    words = _build_totals(out, data, net_by_rate)
    out.append("</NDHDon></DLHDon>")
    dlhdon = "".join(out).encode()
    # NMua (a buyer with no field) and THTTLTSuat (no rate group) are the only elements that
    # can be empty, and C14N writes them out in full (§6.1); no other "/>" can occur, since
    # text cannot hold a raw ">".
    self_closed = "<NMua/>" in out or "<THTTLTSuat/>" in out

    # §6.1 / §11 step 3: signing.py inserts the seller Signature into DSCKS/NBan; NMua and
    # CCKSKhac stay empty as on the real invoices.
    head = XML_DECLARATION + b"<HDon>" if xml_declaration else b"<HDon>"
    return UnsignedInvoice(
        xml=b"".join((head, dlhdon, _EMPTY_SIGNATURES)),
        invoice_id=invoice_id,
        seller_tax_code=seller_tax_code,
        dlhdon_c14n=_SELF_CLOSED.sub(rb"<\1></\1>", dlhdon) if self_closed else dlhdon,
        amount_in_words=words,
    )


# TTChung differs from one invoice of a run to the next by its number only: the rest is
# checked and written once per distinct set of values. Kept only when every value has exactly
# the type that is written (no ExtraField with a number, no related invoice), so that equal
# values write the same text.
_GENERAL_TEXTS: dict[tuple, tuple[str, str]] = {}
_GENERAL_TEXTS_MAX = 64


def _general_cache_key(data: InvoiceData) -> tuple | None:
    if data.authorised_issuer is not None or data.related is not None:
        return None
    extra = data.extra
    if type(extra) is not tuple:
        return None
    for entry in extra:
        if (
            type(entry) is not ExtraField
            or type(entry.name) is not str
            or type(entry.kind) is not str
            or type(entry.value) is not str
        ):
            return None
    values = (data.form, data.serial, data.currency, data.payment_method, data.provider_tax_code)
    if type(data.issue_date) is not date or any(type(value) is not str for value in values):
        return None
    return (*values, data.issue_date, extra)


def _build_general(out: list[str], data: InvoiceData) -> None:
    """DLHDon/TTChung (§4.1), fields in table order."""
    key = _general_cache_key(data)
    cached = _GENERAL_TEXTS.get(key) if key is not None else None
    if cached is None:
        head, tail = _general_text(data)  # checks the number too, in table order
        if key is not None:
            if len(_GENERAL_TEXTS) >= _GENERAL_TEXTS_MAX:
                _GENERAL_TEXTS.clear()
            _GENERAL_TEXTS[key] = (head, tail)
    else:
        head, tail = cached
        _check_number(data.number)
    # Unpadded SHDon: it is a number (§3.2); both 14 and 00000014 are accepted (§4.1).
    out.append(f"{head}{data.number!s}{tail}")


def _check_number(number: object) -> None:
    if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= _MAX_NUMBER:
        raise _field_error(
            "DLHDon/TTChung/SHDon",
            f"invoice number must be an int from 1 to {_MAX_NUMBER}, got {number!r}",
            f"số hóa đơn phải là số nguyên từ 1 đến {_MAX_NUMBER}, nhận được {number!r}",
        )


def _general_text(data: InvoiceData) -> tuple[str, str]:
    """TTChung up to the SHDon value, and after it."""
    path = "DLHDon/TTChung"
    if data.form not in INVOICE_TITLES:
        raise _field_error(
            f"{path}/KHMSHDon",
            f"form {data.form!r} is not supported; use '1' (VAT invoice) or '2' (sales invoice)",
            f"mẫu số {data.form!r} không được hỗ trợ; dùng '1' (hóa đơn GTGT) "
            "hoặc '2' (hóa đơn bán hàng)",
        )
    issue_date = _plain_date(data.issue_date, f"{path}/NLap")
    serial = _serial(data.serial, f"{path}/KHHDon", issue_date)
    _check_number(data.number)
    if data.currency != "VND":
        raise _field_error(
            f"{path}/DVTTe",
            f"currency {data.currency!r} is not supported; only VND",
            f"đơn vị tiền tệ {data.currency!r} không được hỗ trợ; chỉ dùng VND",
        )
    payment_method = _text(data.payment_method, f"{path}/HTTToan", 50, required=True)
    provider = _tax_code(data.provider_tax_code, f"{path}/MSTTCGP", required=True)
    assert payment_method is not None

    head = (
        f"<TTChung><PBan>{FORMAT_VERSION}</PBan><THDon>{INVOICE_TITLES[data.form]}</THDon>"
        f"<KHMSHDon>{data.form}</KHMSHDon><KHHDon>{serial}</KHHDon><SHDon>"
    )
    # HDCTTChinh is listed as required in 2.1.0; 0 = not a financial-leasing invoice (§4.1:
    # emit 0). TGia: §4.1 says send 1 for VND, as every real sample does.
    out = [
        f"</SHDon><NLap>{issue_date.isoformat()}</NLap><HDCTTChinh>0</HDCTTChinh>"
        f"<DVTTe>VND</DVTTe><TGia>1</TGia><HTTToan>{_escape(payment_method)}</HTTToan>"
        f"<MSTTCGP>{provider}</MSTTCGP>"
    ]
    issuer = data.authorised_issuer
    if issuer is not None:
        _add(
            out,
            "MSTDVNUNLHDon",
            _tax_code(issuer.tax_code, f"{path}/MSTDVNUNLHDon", required=True),
        )
        _add(out, "TDVNUNLHDon", _text(issuer.name, f"{path}/TDVNUNLHDon", 400, required=True))
        _add(
            out,
            "DCDVNUNLHDon",
            _text(issuer.address, f"{path}/DCDVNUNLHDon", 400, required=True),
        )
    if data.related is not None:
        _build_related(out, data.related, issue_date)
    _add_extras(out, data.extra, path)
    out.append("</TTChung>")
    return head, "".join(out)


def _build_related(out: list[str], related: RelatedInvoice, issue_date: date) -> None:
    """TTChung/TTHDLQuan, last but TTKhac (§4.2; position as on the real replacement)."""
    path = "DLHDon/TTChung/TTHDLQuan"
    if related.nature not in (1, 2):
        raise _field_error(
            f"{path}/TCHDon",
            f"nature must be 1 (replaces) or 2 (adjusts), got {related.nature!r}",
            f"tính chất phải là 1 (thay thế) hoặc 2 (điều chỉnh), nhận được {related.nature!r}",
        )
    if related.kind not in (1, 2, 3, 4):
        raise _field_error(
            f"{path}/LHDCLQuan",
            f"related invoice type must be 1 to 4, got {related.kind!r}",
            f"loại hóa đơn có liên quan phải từ 1 đến 4, nhận được {related.kind!r}",
        )
    original_date = _plain_date(related.issue_date, f"{path}/NLHDCLQuan")
    if original_date > issue_date:
        raise _field_error(
            f"{path}/NLHDCLQuan",
            f"the related invoice ({original_date}) cannot be later than this one ({issue_date})",
            f"hóa đơn có liên quan ({original_date}) không thể lập sau hóa đơn này ({issue_date})",
        )
    form = _text(related.form, f"{path}/KHMSHDCLQuan", 11, required=True)
    if related.kind == 1:
        # A Decree 123 e-invoice: one-digit form and a §5.2 serial of its own year.
        serial = _serial(related.serial, f"{path}/KHHDCLQuan", original_date)
        if form is None or not re.fullmatch(r"[1-9]", form):
            raise _field_error(
                f"{path}/KHMSHDCLQuan",
                f"form of a Decree 123 e-invoice must be one digit, got {form!r}",
                f"mẫu số hóa đơn theo Nghị định 123 phải là một chữ số, nhận được {form!r}",
            )
    else:
        serial = _text(related.serial, f"{path}/KHHDCLQuan", 8, required=True)
    number = related.number
    if isinstance(number, int) and not isinstance(number, bool) and 1 <= number <= _MAX_NUMBER:
        number_text = str(number)
    elif isinstance(number, str) and re.fullmatch(r"\d{1,8}", number) and int(number) >= 1:
        number_text = number
    else:
        raise _field_error(
            f"{path}/SHDCLQuan",
            f"related invoice number must be 1 to 8 digits and >= 1, got {number!r}",
            f"số hóa đơn có liên quan phải có 1 đến 8 chữ số và >= 1, nhận được {number!r}",
        )
    note = _text(related.note, f"{path}/GChu", 255)
    out.append("<TTHDLQuan>")
    _add(out, "TCHDon", str(related.nature))
    _add(out, "LHDCLQuan", str(related.kind))
    _add(out, "KHMSHDCLQuan", form)
    _add(out, "KHHDCLQuan", serial)
    _add(out, "SHDCLQuan", number_text)
    _add(out, "NLHDCLQuan", original_date.isoformat())
    _add(out, "GChu", note)
    out.append("</TTHDLQuan>")


# A period run writes the same seller on every invoice: its block is validated and written
# once. Only sellers without extension fields are kept, so equal sellers (same strings) are
# exactly the ones that write the same block; errors are never kept.
_SELLER_BLOCKS: dict[Seller, tuple[str, str]] = {}
_SELLER_BLOCKS_MAX = 64


def _build_seller(out: list[str], seller: Seller) -> str:
    """NDHDon/NBan (§4.4); returns the seller's MST."""
    cacheable = type(seller) is Seller and seller.extra == ()
    if cacheable:
        try:
            cached = _SELLER_BLOCKS.get(seller)
        except TypeError:  # a field of an unhashable type, refused below
            cacheable, cached = False, None
        if cached is not None:
            out.append(cached[0])
            return cached[1]
    path = "NDHDon/NBan"
    block = ["<NBan>"]
    name = _text(seller.name, f"{path}/Ten", 400, required=True)
    tax_code = _tax_code(seller.tax_code, f"{path}/MST", required=True)
    assert tax_code is not None
    _add(block, "Ten", name)
    _add(block, "MST", tax_code)
    _add(block, "DChi", _text(seller.address, f"{path}/DChi", 400, required=True))
    _add(block, "MCHang", _text(seller.store_code, f"{path}/MCHang", 50))
    _add(block, "TCHang", _text(seller.store_name, f"{path}/TCHang", 400))
    _add(block, "SDThoai", _text(seller.phone, f"{path}/SDThoai", 20))
    _add(block, "DCTDTu", _text(seller.email, f"{path}/DCTDTu", 50))
    _add(block, "STKNHang", _text(seller.bank_account, f"{path}/STKNHang", 30))
    _add(block, "TNHang", _text(seller.bank_name, f"{path}/TNHang", 400))
    _add(block, "Fax", _text(seller.fax, f"{path}/Fax", 20))
    _add(block, "Website", _text(seller.website, f"{path}/Website", 100))
    _add_extras(block, seller.extra, path)
    block.append("</NBan>")
    text = "".join(block)
    if cacheable:
        if len(_SELLER_BLOCKS) >= _SELLER_BLOCKS_MAX:
            _SELLER_BLOCKS.clear()
        _SELLER_BLOCKS[seller] = (text, tax_code)
    out.append(text)
    return tax_code


def _build_buyer(out: list[str], buyer: Buyer) -> None:
    """NDHDon/NMua (§4.5). Every field is optional: an absent one costs no call."""
    citizen_id = buyer.citizen_id
    if citizen_id is not None:
        citizen_id = _text(citizen_id, "NDHDon/NMua/CCCDan", 12)
        if citizen_id is not None and not _CITIZEN_ID.fullmatch(citizen_id):
            raise _field_error(
                "NDHDon/NMua/CCCDan",
                "citizen ID number must be 12 digits",
                "số căn cước công dân phải gồm 12 chữ số",
            )
    start = len(out)
    out.append("<NMua>")
    for tag, value, max_length in (
        ("Ten", buyer.name, 400),
        ("MST", buyer.tax_code, 0),
        ("MDVQHNSach", buyer.budget_unit_code, 7),
        ("DChi", buyer.address, 400),
        ("MKHang", buyer.buyer_code, 50),
        ("SDThoai", buyer.phone, 20),
        ("CCCDan", citizen_id, 0),
        ("SHChieu", buyer.passport, 20),
        ("DCTDTu", buyer.email, 50),
        ("HVTNMHang", buyer.personal_name, 100),
        ("STKNHang", buyer.bank_account, 30),
        ("TNHang", buyer.bank_name, 400),
    ):
        if value is None:
            continue
        if tag == "MST":
            value = _tax_code(value, "NDHDon/NMua/MST", required=False)
        elif tag != "CCCDan":  # checked above
            value = _text(value, _BUYER_PATHS[tag], max_length)
        if value is not None:
            out.append(f"<{tag}>{_escape(value)}</{tag}>")
    _add_extras(out, buyer.extra, "NDHDon/NMua")
    _close(out, "NMua", start)


_BUYER_PATHS = {
    tag: f"NDHDon/NMua/{tag}"
    for tag in (
        "Ten",
        "MDVQHNSach",
        "DChi",
        "MKHang",
        "SDThoai",
        "SHChieu",
        "DCTDTu",
        "HVTNMHang",
        "STKNHang",
        "TNHang",
    )
}


# A market bills most stalls the same fixed fees, and a period run hands the builder the same
# line objects for them (services shares them): each line object is checked and written once
# per form.
# Keyed by the object itself (its id, the object kept alive alongside): an InvoiceLine is
# frozen, and only lines made of immutable values of exactly the types written are kept, so an
# object writes the same text every time. Errors are never kept.
_LINE_TEXTS: dict[int, tuple[InvoiceLine, bool, str, str | None, int | None]] = {}
_LINE_TEXTS_MAX = 4096


def _keeps_its_text(line: InvoiceLine) -> bool:
    if type(line) is not InvoiceLine or type(line.extra) is not tuple or line.extra:
        return False
    for text in (line.name, line.code, line.unit, line.vat_rate):
        if text is not None and type(text) is not str:
            return False
    for number in (
        line.number,
        line.kind,
        line.net_amount_vnd,
        line.discount_amount_vnd,
        line.quantity,
        line.unit_price,
        line.discount_rate,
    ):
        if number is not None and type(number) is not int and type(number) is not Decimal:
            return False
    return True


def _build_lines(out: list[str], data: InvoiceData) -> dict[str | None, int]:
    """NDHDon/DSHHDVu (§4.6). Returns Σ ThTien per TSuat, discounts (TChat 3) subtracted."""
    if not data.lines:
        raise _field_error(
            "NDHDon/DSHHDVu",
            "an invoice needs at least one line",
            "hóa đơn phải có ít nhất một dòng hàng hóa, dịch vụ",
        )
    is_vat_invoice = data.form == "1"
    out.append("<DSHHDVu>")
    net_by_rate: dict[str | None, int] = {}
    seen_numbers: set[int] = set()
    for position, line in enumerate(data.lines, start=1):
        cached = _LINE_TEXTS.get(id(line))
        if (
            cached is not None
            and cached[0] is line
            and cached[1] is is_vat_invoice
            and line.number not in seen_numbers
        ):
            seen_numbers.add(line.number)
            text, rate, net = cached[2:]
        else:
            text, rate, net = _line_text(
                line, f"NDHDon/DSHHDVu/HHDVu[{position}]", is_vat_invoice, seen_numbers
            )
            if _keeps_its_text(line):
                if len(_LINE_TEXTS) >= _LINE_TEXTS_MAX:
                    _LINE_TEXTS.clear()
                _LINE_TEXTS[id(line)] = (line, is_vat_invoice, text, rate, net)
        out.append(text)
        if net is not None:
            net_by_rate[rate] = net_by_rate.get(rate, 0) + net
    out.append("</DSHHDVu>")
    return net_by_rate


def _line_text(
    line: InvoiceLine, path: str, is_vat_invoice: bool, seen_numbers: set[int]
) -> tuple[str, str | None, int | None]:
    """One HHDVu, its TSuat and its ThTien as counted in the totals (negative for a trade
    discount; None for a note line, which counts nowhere)."""
    if line.kind not in _SUPPORTED_LINE_KINDS:
        raise _field_error(
            f"{path}/TChat",
            f"line kind {line.kind!r} is not supported; use 1 (goods/service), "
            "3 (trade discount) or 4 (note)",
            f"tính chất {line.kind!r} không được hỗ trợ; dùng 1 (hàng hóa, dịch vụ), "
            "3 (chiết khấu thương mại) hoặc 4 (ghi chú)",
        )
    number = line.number
    if (
        isinstance(number, bool)
        or not isinstance(number, int)
        or not 1 <= number <= 9999
        or number in seen_numbers
    ):
        raise _field_error(
            f"{path}/STT",
            f"line number must be a unique int from 1 to 9999, got {number!r}",
            f"số thứ tự phải là số nguyên duy nhất từ 1 đến 9999, nhận được {number!r}",
        )
    seen_numbers.add(number)

    out = [f"<HHDVu><TChat>{line.kind!s}</TChat><STT>{number!s}</STT>"]
    _add(out, "MHHDVu", _text(line.code, f"{path}/MHHDVu", 50))
    _add(out, "THHDVu", _text(line.name, f"{path}/THHDVu", 500, required=True))

    if line.kind == 4:  # a note line carries no amounts
        for value, tag in (
            (line.net_amount_vnd, "ThTien"),
            (line.quantity, "SLuong"),
            (line.unit_price, "DGia"),
            (line.vat_rate, "TSuat"),
        ):
            if value is not None:
                raise _field_error(
                    f"{path}/{tag}",
                    "a note line (TChat 4) carries no amounts or VAT rate",
                    "dòng ghi chú (TChat 4) không có số tiền hay thuế suất",
                )
        _add_extras(out, line.extra, path)
        out.append("</HHDVu>")
        return "".join(out), None, None

    goods = line.kind == 1
    _add(out, "DVTinh", _text(line.unit, f"{path}/DVTinh", 50, required=goods))
    for value, tag, required in (
        (line.quantity, "SLuong", goods),
        (line.unit_price, "DGia", goods),
    ):
        if value is None:
            if required:
                raise _field_error(f"{path}/{tag}", "is required", "là trường bắt buộc")
            continue
        out.append(f"<{tag}>{_decimal(value, f'{path}/{tag}')}</{tag}>")
    if line.discount_rate is not None:
        rate_text = _decimal(line.discount_rate, f"{path}/TLCKhau", precision=6, scale=4)
        out.append(f"<TLCKhau>{rate_text}</TLCKhau>")
    if line.discount_amount_vnd is not None:
        out.append(f"<STCKhau>{_amount(line.discount_amount_vnd, f'{path}/STCKhau')}</STCKhau>")
    if line.net_amount_vnd is None:
        raise _field_error(f"{path}/ThTien", "is required", "là trường bắt buộc")
    net = line.net_amount_vnd
    out.append(f"<ThTien>{_amount(net, f'{path}/ThTien')}</ThTien>")
    if goods:  # SLuong and DGia are required and were checked above
        # §4.6: ThTien = SLuong × DGia − STCKhau, to the đồng (DGia may carry decimals).
        expected = round_vnd(
            Decimal(line.quantity) * Decimal(line.unit_price)
            - Decimal(line.discount_amount_vnd or 0)
        )
        if expected != net:
            raise _field_error(
                f"{path}/ThTien",
                f"ThTien {net} ≠ SLuong × DGia − STCKhau = {expected}",
                f"thành tiền {net} ≠ số lượng × đơn giá − chiết khấu = {expected}",
            )

    if is_vat_invoice:
        rate = line.vat_rate
        if rate not in RATE_CODES:
            raise _field_error(
                f"{path}/TSuat",
                f"VAT rate {rate!r} must be one of {', '.join(RATE_CODES)}",
                f"thuế suất {rate!r} phải là một trong {', '.join(RATE_CODES)}",
            )
        out.append(f"<TSuat>{rate}</TSuat>")
    else:
        rate = None
        if line.vat_rate is not None:
            raise _field_error(
                f"{path}/TSuat",
                "a sales invoice (form 2) carries no VAT rate",
                "hóa đơn bán hàng (mẫu số 2) không có thuế suất",
            )
    _add_extras(out, line.extra, path)
    out.append("</HHDVu>")
    return "".join(out), rate, net if goods else -net


def _build_totals(out: list[str], data: InvoiceData, net_by_rate: dict[str | None, int]) -> str:
    """NDHDon/TToan (§4.7): THTTLTSuat, TgTCThue, TgTThue, TTCKTMai, TgTTTBSo, TgTTTBChu,
    TTKhac, after checking the totals against the lines (§10). Returns TgTTTBChu."""
    path = "NDHDon/TToan"
    totals = data.totals
    out.append("<TToan>")
    if data.form == "1":
        if not isinstance(totals, VatBreakdown):
            raise _field_error(
                path,
                "a VAT invoice (form 1) needs a VatBreakdown (rounding.vat_inclusive_breakdown)",
                "hóa đơn GTGT (mẫu số 1) cần tổng tiền theo thuế suất (VatBreakdown)",
            )
        _check_vat_totals(totals, net_by_rate, path)
        start = len(out)
        out.append("<THTTLTSuat>")
        for group in totals.groups:
            # Order TSuat, ThTien, TThue (§4.7); the rate was checked against the lines'.
            out.append(
                f"<LTSuat><TSuat>{_escape(group.rate)}</TSuat>"
                f"<ThTien>{_amount(group.net_vnd, _GROUP_NET_PATH)}</ThTien>"
                f"<TThue>{_amount(group.vat_vnd, _GROUP_VAT_PATH)}</TThue></LTSuat>"
            )
        _close(out, "THTTLTSuat", start)
        out.append(
            f"<TgTCThue>{_amount(totals.total_net_vnd, f'{path}/TgTCThue')}</TgTCThue>"
            f"<TgTThue>{_amount(totals.total_vat_vnd, f'{path}/TgTThue')}</TgTThue>"
        )
    else:
        if not isinstance(totals, SalesTotals):
            raise _field_error(
                path,
                "a sales invoice (form 2) needs SalesTotals and carries no VAT fields",
                "hóa đơn bán hàng (mẫu số 2) cần SalesTotals và không có các trường thuế GTGT",
            )
        line_total = net_by_rate.get(None, 0)
        if totals.total_payable_vnd != line_total:
            raise _field_error(
                f"{path}/TgTTTBSo",
                f"total {totals.total_payable_vnd} ≠ Σ line amounts {line_total}",
                f"tổng tiền thanh toán {totals.total_payable_vnd} ≠ tổng thành tiền {line_total}",
            )
    discounts = [line.net_amount_vnd or 0 for line in data.lines if line.kind == 3]
    if discounts:
        # Informational; the discount is already inside TgTCThue (§4.7).
        out.append(f"<TTCKTMai>{sum(discounts)!s}</TTCKTMai>")
    payable = totals.total_payable_vnd
    payable_text = _amount(payable, f"{path}/TgTTTBSo")
    words = _amount_words(data.amount_in_words, payable, f"{path}/TgTTTBChu")
    out.append(f"<TgTTTBSo>{payable_text}</TgTTTBSo><TgTTTBChu>{_escape(words)}</TgTTTBChu>")
    _add_extras(out, data.totals_extra, path)
    out.append("</TToan>")
    return words


_GROUP_NET_PATH = "NDHDon/TToan/THTTLTSuat/LTSuat/ThTien"
_GROUP_VAT_PATH = "NDHDon/TToan/THTTLTSuat/LTSuat/TThue"


def _check_vat_totals(totals: VatBreakdown, net_by_rate: dict[str | None, int], path: str) -> None:
    """The §10 identities, per group and overall, against the lines actually written."""
    group_rates = [group.rate for group in totals.groups]
    rates = set(group_rates)
    if len(rates) != len(group_rates) or rates != net_by_rate.keys():
        line_rates = sorted(map(str, net_by_rate))
        raise _field_error(
            f"{path}/THTTLTSuat",
            f"rate groups {group_rates} do not match the line rates {line_rates}",
            f"các nhóm thuế suất {group_rates} không khớp thuế suất của các dòng {line_rates}",
        )
    for group in totals.groups:
        net = group.net_vnd
        lines_net = net_by_rate[group.rate]
        if net != lines_net:
            raise _field_error(
                f"{path}/THTTLTSuat/LTSuat[TSuat={group.rate}]/ThTien",
                f"group amount {group.net_vnd} ≠ Σ line ThTien {lines_net}",
                f"thành tiền nhóm {group.net_vnd} ≠ tổng thành tiền các dòng {lines_net}",
            )
        percent = rate_percent(group.rate) or 0
        if type(net) is int and net >= 0:
            expected = (2 * net * percent + 100) // 200  # round_vnd(net × percent / 100)
        else:
            expected = round_vnd(Decimal(net) * percent / 100)
        # VAT derived from a VAT-inclusive price may differ from net × rate by 1 đồng
        # (§10.1, §8.4); KCT/KKKNT/0% carry none.
        if abs(group.vat_vnd - expected) > (1 if percent else 0):
            raise _field_error(
                f"{path}/THTTLTSuat/LTSuat[TSuat={group.rate}]/TThue",
                f"VAT {group.vat_vnd} is not {group.rate} of {group.net_vnd} (≈ {expected})",
                f"tiền thuế {group.vat_vnd} không bằng {group.rate} của {group.net_vnd} "
                f"(≈ {expected})",
            )
    total_net = sum(group.net_vnd for group in totals.groups)
    total_vat = sum(group.vat_vnd for group in totals.groups)
    for tag, stated, expected, vi in (
        ("TgTCThue", totals.total_net_vnd, total_net, "tổng tiền chưa thuế"),
        ("TgTThue", totals.total_vat_vnd, total_vat, "tổng tiền thuế"),
        ("TgTTTBSo", totals.total_payable_vnd, total_net + total_vat, "tổng tiền thanh toán"),
    ):
        if stated != expected:
            raise _field_error(
                f"{path}/{tag}",
                f"{tag} {stated} ≠ {expected} from the rate groups",
                f"{vi} {stated} ≠ {expected} tính từ các nhóm thuế suất",
            )


def _amount_words(given: str | None, payable: int, path: str) -> str:
    try:
        computed = amount_in_words(payable)
    except ValueError as error:
        raise _field_error(
            path, str(error), f"không đọc được số tiền {payable} thành chữ"
        ) from error
    if given is None:
        return computed
    text = _text(given, path, 255, required=True)
    assert text is not None
    if normalise_words_for_comparison(text) != normalise_words_for_comparison(computed):
        raise _field_error(
            path,
            f"{text!r} does not read {payable} ({computed!r})",
            f"{text!r} không khớp số tiền {payable} ({computed!r})",
        )
    return text


# ---------------------------------------------------------------------------------------------
# Safe reading


_parsers = threading.local()


def safe_parser() -> etree.XMLParser:
    """The parser of `safe_parse`: no entity resolution, no DTD, no network, libxml2's
    huge-document limits kept, IDs not collected (nothing looks them up; `signing` indexes
    them itself). One per thread: an lxml parser must not be used by two threads at once, and
    building one per call costs more than parsing a small invoice."""
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            huge_tree=False,
            load_dtd=False,
            dtd_validation=False,
            remove_blank_text=False,
            remove_comments=False,
            collect_ids=False,
        )
        _parsers.parser = parser
    return parser


def safe_parse(xml_bytes: bytes, max_bytes: int = DEFAULT_MAX_XML_BYTES) -> etree._Element:
    """Parse untrusted XML bytes into an lxml element, or raise `InvoiceXmlError`.

    The one way invoice XML from outside is read (`signing` uses it too, reporting problems as
    its own errors). Refused with `UnsafeXmlError`: more than `max_bytes`; any DOCTYPE or
    ENTITY declaration (XXE, billion laughs; e-invoices never carry one). The bytes are scanned
    before libxml2 sees them, and the parsed document is checked again (which also covers
    UTF-16 input). The parser (`safe_parser`) resolves no entities, loads no DTD, never touches
    the network and keeps libxml2's huge-document limits. The bytes are otherwise kept as they
    are (whitespace, comments) so that signatures can be verified on the result.
    """
    if not isinstance(xml_bytes, bytes | bytearray | memoryview):
        raise TypeError(f"safe_parse takes bytes, not {type(xml_bytes).__name__}")
    data = bytes(xml_bytes)
    if len(data) > max_bytes:
        raise UnsafeXmlError(
            f"XML refused: {len(data)} bytes is over the {max_bytes}-byte limit",
            message_vi=f"Từ chối XML: {len(data)} byte vượt giới hạn {max_bytes} byte",
        )
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        raise _unsafe_declaration()
    try:
        root = etree.fromstring(data, safe_parser())
    except etree.XMLSyntaxError as error:
        raise InvoiceXmlError(
            f"malformed XML: {error}", message_vi=f"XML không hợp lệ: {error}"
        ) from error
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise _unsafe_declaration()
    if next(root.iter(etree.Entity), None) is not None:
        raise _unsafe_declaration()
    return root


def _unsafe_declaration() -> UnsafeXmlError:
    return UnsafeXmlError(
        "XML refused: it contains a DOCTYPE or ENTITY declaration, which invoice XML never "
        "needs (possible XXE or entity-expansion attack)",
        message_vi="Từ chối XML: có khai báo DOCTYPE hoặc ENTITY, hóa đơn điện tử không dùng "
        "(có thể là tấn công XXE hoặc mở rộng thực thể)",
    )


def _child_text(element: etree._Element | None, tag: str) -> str | None:
    if element is None:
        return None
    child = element.find(tag)
    if child is None or child.text is None:
        return None
    return child.text.strip() or None


def _required_text(element: etree._Element | None, tag: str, path: str) -> str:
    text = _child_text(element, tag)
    if text is None:
        raise InvoiceXmlError(
            f"invoice XML lacks {path}/{tag}", message_vi=f"XML hóa đơn thiếu {path}/{tag}"
        )
    return text


def _number(text: str | None, path: str) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise InvoiceXmlError(
            f"{path}: {text!r} is not a number", message_vi=f"{path}: {text!r} không phải là số"
        )
    return value


def _find_invoice(root: etree._Element) -> etree._Element:
    """The HDon element: the root itself, or DLieu/HDon inside a TDiep message (§8.1)."""
    if root.tag == "HDon":
        return root
    if root.tag == "TDiep":
        invoice = root.find("DLieu/HDon")
        if invoice is not None:
            return invoice
    raise InvoiceXmlError(
        f"expected an HDon (no namespace) or a TDiep containing one, found {root.tag!r}",
        message_vi=f"cần phần tử HDon (không namespace) hoặc TDiep chứa HDon, gặp {root.tag!r}",
    )


def _rate_fraction(rate: str | None) -> Decimal | None:
    """The VAT fraction of a TSuat code ("8%" -> 0.08, "KHAC:5.26%" -> 0.0526), 0 for KCT /
    KKKNT, None when it cannot be known (plain "KHAC", unknown codes)."""
    if rate in ("KCT", "KKKNT"):
        return Decimal(0)
    match = re.fullmatch(r"(?:KHAC:)?(\d{1,2}(?:\.\d{1,2})?)%", rate or "")
    return Decimal(match.group(1)) / 100 if match else None


def parse_invoice_summary(
    xml_bytes: bytes, *, max_bytes: int = DEFAULT_MAX_XML_BYTES
) -> dict[str, Any]:
    """Key fields of an `HDon` (bare or inside a `TDiep`) and the problems found re-adding it.

    Amounts are `Decimal` (real files write both `136821884` and `84000.0`), `number` an int,
    `issue_date` a date. Keys: invoice_id, version, title, form, serial, number, issue_date,
    currency, payment_method, seller_name, seller_tax_code, buyer_name, buyer_tax_code,
    buyer_personal_name, lines, groups, fees, total_net (TgTCThue), total_vat (TgTThue),
    trade_discount (TTCKTMai), total_payable (TgTTTBSo), amount_in_words (TgTTTBChu),
    tax_authority_code (MCCQT), identity_problems, rate_problems, words_match.

    `identity_problems` lists each failed identity of §10 / §8.4 rule 9, with its numbers:
    TgTCThue = Σ ThTien (TChat 1 minus TChat 3); per rate, LTSuat/ThTien = Σ line ThTien;
    TgTCThue = Σ LTSuat/ThTien; TgTThue = Σ LTSuat/TThue; TgTTTBSo = TgTCThue + TgTThue
    (+ Σ TPhi). A sales invoice (no TgTCThue) must have TgTTTBSo = Σ ThTien (+ Σ TPhi).
    `rate_problems` lists groups whose TThue is more than 1 đồng away from ThTien × rate
    (§8.4: not a rejection reason by itself). `words_match` says whether TgTTTBChu reads
    TgTTTBSo (§9, suffix style aside); None when it cannot be checked.
    """
    root = safe_parse(xml_bytes, max_bytes=max_bytes)
    invoice = _find_invoice(root)
    data = invoice.find("DLHDon")
    if data is None:
        raise InvoiceXmlError(
            "invoice XML lacks HDon/DLHDon", message_vi="XML hóa đơn thiếu HDon/DLHDon"
        )
    general = data.find("TTChung")
    content = data.find("NDHDon")
    totals = content.find("TToan") if content is not None else None
    if general is None or content is None or totals is None:
        raise InvoiceXmlError(
            "invoice XML lacks DLHDon/TTChung, DLHDon/NDHDon or NDHDon/TToan",
            message_vi="XML hóa đơn thiếu DLHDon/TTChung, DLHDon/NDHDon hoặc NDHDon/TToan",
        )
    seller = content.find("NBan")
    buyer = content.find("NMua")

    number_text = _required_text(general, "SHDon", "TTChung")
    date_text = _required_text(general, "NLap", "TTChung")
    try:
        number = int(number_text)
        issue_date = date.fromisoformat(date_text)
    except ValueError as error:
        raise InvoiceXmlError(
            f"TTChung: bad SHDon {number_text!r} or NLap {date_text!r}",
            message_vi=f"TTChung: SHDon {number_text!r} hoặc NLap {date_text!r} không hợp lệ",
        ) from error

    lines = []
    for position, item in enumerate(content.findall("DSHHDVu/HHDVu"), start=1):
        path = f"HHDVu[{position}]"
        kind_text = _child_text(item, "TChat")
        lines.append(
            {
                "kind": int(kind_text) if kind_text and kind_text.isdigit() else None,
                "number": _child_text(item, "STT"),
                "code": _child_text(item, "MHHDVu"),
                "name": _child_text(item, "THHDVu"),
                "unit": _child_text(item, "DVTinh"),
                "quantity": _number(_child_text(item, "SLuong"), f"{path}/SLuong"),
                "unit_price": _number(_child_text(item, "DGia"), f"{path}/DGia"),
                "net_amount": _number(_child_text(item, "ThTien"), f"{path}/ThTien"),
                "vat_rate": _child_text(item, "TSuat"),
            }
        )
    groups = [
        {
            "rate": _child_text(entry, "TSuat"),
            "net": _number(_child_text(entry, "ThTien"), "LTSuat/ThTien"),
            "vat": _number(_child_text(entry, "TThue"), "LTSuat/TThue"),
        }
        for entry in totals.findall("THTTLTSuat/LTSuat")
    ]
    fees = [
        {
            "name": _child_text(entry, "TLPhi"),
            "amount": _number(_child_text(entry, "TPhi"), "LPhi/TPhi"),
        }
        for entry in totals.findall("DSLPhi/LPhi")
    ]
    total_net = _number(_child_text(totals, "TgTCThue"), "TToan/TgTCThue")
    total_vat = _number(_child_text(totals, "TgTThue"), "TToan/TgTThue")
    total_payable = _number(_child_text(totals, "TgTTTBSo"), "TToan/TgTTTBSo")
    words = _child_text(totals, "TgTTTBChu")

    identity_problems, rate_problems = _check_identities(
        lines, groups, fees, total_net, total_vat, total_payable
    )
    words_match: bool | None = None
    if (
        words is not None
        and total_payable is not None
        and total_payable == total_payable.to_integral_value()
        and 0 <= total_payable <= MAX_AMOUNT_VND
    ):
        words_match = normalise_words_for_comparison(words) == normalise_words_for_comparison(
            amount_in_words(int(total_payable))
        )

    return {
        "invoice_id": data.get("Id"),
        "version": _child_text(general, "PBan"),
        "title": _child_text(general, "THDon"),
        "form": _required_text(general, "KHMSHDon", "TTChung"),
        "serial": _required_text(general, "KHHDon", "TTChung"),
        "number": number,
        "issue_date": issue_date,
        "currency": _child_text(general, "DVTTe"),
        "payment_method": _child_text(general, "HTTToan"),
        "seller_name": _child_text(seller, "Ten"),
        "seller_tax_code": _child_text(seller, "MST"),
        "buyer_name": _child_text(buyer, "Ten"),
        "buyer_tax_code": _child_text(buyer, "MST"),
        "buyer_personal_name": _child_text(buyer, "HVTNMHang"),
        "lines": lines,
        "groups": groups,
        "fees": fees,
        "total_net": total_net,
        "total_vat": total_vat,
        "trade_discount": _number(_child_text(totals, "TTCKTMai"), "TToan/TTCKTMai"),
        "total_payable": total_payable,
        "amount_in_words": words,
        "tax_authority_code": _child_text(invoice, "MCCQT"),
        "identity_problems": identity_problems,
        "rate_problems": rate_problems,
        "words_match": words_match,
    }


def _check_identities(
    lines: list[dict[str, Any]],
    groups: list[dict[str, Any]],
    fees: list[dict[str, Any]],
    total_net: Decimal | None,
    total_vat: Decimal | None,
    total_payable: Decimal | None,
) -> tuple[list[str], list[str]]:
    identity: list[str] = []
    rates: list[str] = []
    # §4.7: TgTCThue = Σ ThTien(TChat 1) − Σ ThTien(TChat 3); other kinds carry no amount.
    signs = {1: 1, 3: -1}
    lines_net = Decimal(0)
    lines_net_by_rate: dict[str | None, Decimal] = {}
    for line in lines:
        sign = signs.get(line["kind"], 0)
        amount = (line["net_amount"] or Decimal(0)) * sign
        lines_net += amount
        lines_net_by_rate[line["vat_rate"]] = lines_net_by_rate.get(line["vat_rate"], 0) + amount
    fees_total = sum((fee["amount"] or Decimal(0) for fee in fees), Decimal(0))
    fee_note = f" + Σ TPhi {fees_total}" if fees_total else ""

    if total_payable is None:
        identity.append("TgTTTBSo is missing")
        return identity, rates
    if total_net is None and not groups:  # sales invoice (§4.7): no VAT fields
        if total_payable != lines_net + fees_total:
            identity.append(
                f"TgTTTBSo {total_payable} ≠ Σ ThTien {lines_net}{fee_note} "
                f"= {lines_net + fees_total}"
            )
        return identity, rates

    if total_net is None or total_vat is None:
        identity.append("TgTCThue or TgTThue is missing on an invoice with VAT rate groups")
        return identity, rates
    if total_net != lines_net:
        identity.append(f"TgTCThue {total_net} ≠ Σ ThTien of the lines {lines_net}")
    if groups:
        groups_net = sum((group["net"] or Decimal(0) for group in groups), Decimal(0))
        groups_vat = sum((group["vat"] or Decimal(0) for group in groups), Decimal(0))
        if total_net != groups_net:
            identity.append(f"TgTCThue {total_net} ≠ Σ LTSuat/ThTien {groups_net}")
        if total_vat != groups_vat:
            identity.append(f"TgTThue {total_vat} ≠ Σ LTSuat/TThue {groups_vat}")
        for group in groups:
            rate = group["rate"]
            in_lines = lines_net_by_rate.get(rate, Decimal(0))
            if group["net"] != in_lines:
                identity.append(
                    f"LTSuat {rate}: ThTien {group['net']} ≠ Σ ThTien of its lines {in_lines}"
                )
            fraction = _rate_fraction(rate)
            if fraction is not None and group["net"] is not None and group["vat"] is not None:
                expected = round_vnd(group["net"] * fraction)
                if abs(group["vat"] - expected) > 1:
                    rates.append(
                        f"LTSuat {rate}: TThue {group['vat']} ≠ ThTien {group['net']} × {rate} "
                        f"≈ {expected}"
                    )
    if total_payable != total_net + total_vat + fees_total:
        identity.append(
            f"TgTTTBSo {total_payable} ≠ TgTCThue {total_net} + TgTThue {total_vat}{fee_note} "
            f"= {total_net + total_vat + fees_total}"
        )
    return identity, rates
