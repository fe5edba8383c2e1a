"""The human-readable content of a signed invoice, read from its stored bytes.

The invoice page shows what was signed, not a second copy of it: every legally required
element (spec einvoice.md §4) is read from the XML here, so the page and the declared document
cannot disagree. Pure module (lxml only), parsing with ``xml.safe_parse``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from lxml import etree

from invoicing.xml import safe_parse

RELATED_NATURE = {"1": "Thay thế", "2": "Điều chỉnh"}  # TCHDon (§4.2)
LINE_NATURE = {
    "1": "Hàng hóa, dịch vụ",
    "2": "Khuyến mại",
    "3": "Chiết khấu thương mại",
    "4": "Ghi chú, diễn giải",
}


def _text(element: etree._Element | None, path: str) -> str:
    if element is None:
        return ""
    return (element.findtext(path) or "").strip()


def _number(text: str) -> Decimal | None:
    try:
        return Decimal(text) if text else None
    except InvalidOperation:
        return None


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _extras(element: etree._Element | None) -> list[tuple[str, str]]:
    if element is None:
        return []
    items = element.findall("TTKhac/TTin")
    return [(_text(item, "TTruong"), _text(item, "DLieu")) for item in items]


@dataclass
class Party:
    name: str = ""
    tax_code: str = ""
    address: str = ""
    phone: str = ""
    email: str = ""
    bank_account: str = ""
    bank_name: str = ""
    store_code: str = ""
    store_name: str = ""
    buyer_code: str = ""
    citizen_id: str = ""
    personal_name: str = ""
    extras: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Line:
    nature: str
    nature_label: str
    number: str
    code: str
    name: str
    unit: str
    quantity: Decimal | None
    unit_price: Decimal | None
    net: Decimal | None
    rate: str


@dataclass
class RateGroup:
    rate: str
    net: Decimal | None
    vat: Decimal | None


@dataclass
class Related:
    nature: str
    nature_label: str
    form: str
    serial: str
    number: str
    issue_date: date | None
    note: str


@dataclass
class InvoiceDocument:
    version: str
    title: str
    form: str
    serial: str
    number: str
    issue_date: date | None
    currency: str
    exchange_rate: str
    payment_method: str
    provider_tax_code: str
    seller: Party
    buyer: Party
    lines: list[Line]
    groups: list[RateGroup]
    total_net: Decimal | None
    total_vat: Decimal | None
    trade_discount: Decimal | None
    total_payable: Decimal | None
    amount_in_words: str
    related: Related | None
    extras: list[tuple[str, str]]
    tax_authority_code: str
    invoice_id: str


def _party(element: etree._Element | None) -> Party:
    return Party(
        name=_text(element, "Ten"),
        tax_code=_text(element, "MST"),
        address=_text(element, "DChi"),
        phone=_text(element, "SDThoai"),
        email=_text(element, "DCTDTu"),
        bank_account=_text(element, "STKNHang"),
        bank_name=_text(element, "TNHang"),
        store_code=_text(element, "MCHang"),
        store_name=_text(element, "TCHang"),
        buyer_code=_text(element, "MKHang"),
        citizen_id=_text(element, "CCCDan"),
        personal_name=_text(element, "HVTNMHang"),
        extras=_extras(element),
    )


def read_document(xml_bytes: bytes) -> InvoiceDocument:
    """Everything the invoice page prints, from an ``HDon`` (bare or inside a ``TDiep``)."""
    root = safe_parse(xml_bytes)
    invoice = root if root.tag == "HDon" else root.find("DLieu/HDon")
    data = invoice.find("DLHDon") if invoice is not None else None
    general = data.find("TTChung") if data is not None else None
    content = data.find("NDHDon") if data is not None else None
    totals = content.find("TToan") if content is not None else None
    related_element = general.find("TTHDLQuan") if general is not None else None
    related = None
    if related_element is not None:
        nature = _text(related_element, "TCHDon")
        related = Related(
            nature=nature,
            nature_label=RELATED_NATURE.get(nature, nature),
            form=_text(related_element, "KHMSHDCLQuan"),
            serial=_text(related_element, "KHHDCLQuan"),
            number=_text(related_element, "SHDCLQuan"),
            issue_date=_date(_text(related_element, "NLHDCLQuan")),
            note=_text(related_element, "GChu"),
        )
    lines = []
    for item in content.findall("DSHHDVu/HHDVu") if content is not None else []:
        nature = _text(item, "TChat")
        lines.append(
            Line(
                nature=nature,
                nature_label=LINE_NATURE.get(nature, nature),
                number=_text(item, "STT"),
                code=_text(item, "MHHDVu"),
                name=_text(item, "THHDVu"),
                unit=_text(item, "DVTinh"),
                quantity=_number(_text(item, "SLuong")),
                unit_price=_number(_text(item, "DGia")),
                net=_number(_text(item, "ThTien")),
                rate=_text(item, "TSuat"),
            )
        )
    groups = [
        RateGroup(
            rate=_text(group, "TSuat"),
            net=_number(_text(group, "ThTien")),
            vat=_number(_text(group, "TThue")),
        )
        for group in (totals.findall("THTTLTSuat/LTSuat") if totals is not None else [])
    ]
    return InvoiceDocument(
        version=_text(general, "PBan"),
        title=_text(general, "THDon"),
        form=_text(general, "KHMSHDon"),
        serial=_text(general, "KHHDon"),
        number=_text(general, "SHDon"),
        issue_date=_date(_text(general, "NLap")),
        currency=_text(general, "DVTTe"),
        exchange_rate=_text(general, "TGia"),
        payment_method=_text(general, "HTTToan"),
        provider_tax_code=_text(general, "MSTTCGP"),
        seller=_party(content.find("NBan") if content is not None else None),
        buyer=_party(content.find("NMua") if content is not None else None),
        lines=lines,
        groups=groups,
        total_net=_number(_text(totals, "TgTCThue")),
        total_vat=_number(_text(totals, "TgTThue")),
        trade_discount=_number(_text(totals, "TTCKTMai")),
        total_payable=_number(_text(totals, "TgTTTBSo")),
        amount_in_words=_text(totals, "TgTTTBChu"),
        related=related,
        extras=_extras(general),
        tax_authority_code=_text(invoice, "MCCQT"),
        invoice_id=data.get("Id", "") if data is not None else "",
    )
