"""The unsigned HDon builder and the safe invoice reader (spec einvoice.md §3, §4, §10, §12).

Golden files live in tests/invoicing/golden/; regenerate them deliberately with
MARKET40_UPDATE_GOLDEN=1 and review the diff.
"""

import dataclasses
import os
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from invoicing.rounding import (
    GrossLine,
    RateGroup,
    VatBreakdown,
    sales_invoice_totals,
    vat_inclusive_breakdown,
)
from invoicing.xml import (
    Buyer,
    ExtraField,
    InvoiceData,
    InvoiceDataError,
    InvoiceLine,
    InvoiceXmlError,
    RelatedInvoice,
    Seller,
    UnsafeXmlError,
    build_invoice_xml,
    parse_invoice_summary,
    safe_parse,
)

GOLDEN_DIR = Path(__file__).parent / "golden"
REPO_ROOT = Path(__file__).resolve().parents[2]
REAL_DIR = REPO_ROOT.parent / "shared" / "data" / "einvoice" / "real"
REAL_FILES = sorted(REAL_DIR.glob("*.xml")) if REAL_DIR.is_dir() else []
REAL_INVOICES = [path for path in REAL_FILES if path.name.startswith("invoice-")]
NO_REAL = f"real invoices not found in {REAL_DIR} (needs ../shared)"

# Child order of each section, from the §3.1 tree and the §4 tables (every element we may
# write, in table order).
SPEC_ORDER = {
    "HDon": ["DLHDon", "DLQRCode", "MCCQT", "DSCKS"],
    "DLHDon": ["TTChung", "NDHDon", "TTKhac"],
    "TTChung": [
        "PBan", "THDon", "KHMSHDon", "KHHDon", "SHDon", "MHSo", "NLap", "HDCTTChinh", "SBKe",
        "NBKe", "DVTTe", "TGia", "HTTToan", "MSTTCGP", "MSTDVNUNLHDon", "TDVNUNLHDon",
        "DCDVNUNLHDon", "TTHDLQuan", "TTKhac",
    ],
    "TTHDLQuan": [
        "TCHDon", "LHDCLQuan", "KHMSHDCLQuan", "KHHDCLQuan", "SHDCLQuan", "NLHDCLQuan", "GChu",
        "SBKCLQuan", "NBKCLQuan",
    ],
    "NDHDon": ["NBan", "NMua", "DSHHDVu", "TToan"],
    "NBan": [
        "Ten", "MST", "DChi", "MCHang", "TCHang", "SDThoai", "DCTDTu", "STKNHang", "TNHang",
        "Fax", "Website", "TTKhac",
    ],
    "NMua": [
        "Ten", "MST", "MDVQHNSach", "DChi", "MKHang", "SDThoai", "CCCDan", "SHChieu", "DCTDTu",
        "HVTNMHang", "STKNHang", "TNHang", "TTKhac",
    ],
    "HHDVu": [
        "TChat", "STT", "MHHDVu", "THHDVu", "DVTinh", "SLuong", "DGia", "TLCKhau", "STCKhau",
        "ThTien", "TSuat", "TTKhac",
    ],
    "TToan": [
        "THTTLTSuat", "TgTCThue", "TgTThue", "DSLPhi", "TTCKTMai", "TgTTTBSo", "TgTTTBChu",
        "TTKhac",
    ],
    "LTSuat": ["TSuat", "ThTien", "TThue"],
    "TTin": ["TTruong", "KDLieu", "DLieu"],
    "DSCKS": ["NBan", "NMua", "CCKSKhac", "CQT"],
}  # fmt: skip

# Where each section lives under HDon (DSCKS/NBan is not the seller block).
SECTION_PATHS = {
    "HDon": ".",
    "DLHDon": "DLHDon",
    "TTChung": "DLHDon/TTChung",
    "TTHDLQuan": "DLHDon/TTChung/TTHDLQuan",
    "NDHDon": "DLHDon/NDHDon",
    "NBan": "DLHDon/NDHDon/NBan",
    "NMua": "DLHDon/NDHDon/NMua",
    "HHDVu": "DLHDon/NDHDon/DSHHDVu/HHDVu",
    "TToan": "DLHDon/NDHDon/TToan",
    "LTSuat": "DLHDon/NDHDon/TToan/THTTLTSuat/LTSuat",
    "TTin": "DLHDon/TTChung/TTKhac/TTin",
    "DSCKS": "DSCKS",
}


# ---------------------------------------------------------------------------------------------
# Sample invoices (fictional market, seller and stall holder)

SELLER = Seller(
    name="Công ty TNHH Quản lý Chợ Mẫu",
    tax_code="0399999999",
    address="1 Đường Chợ, Phường Mẫu, Thành phố Hồ Chí Minh",
    store_code="CHO-01",
    store_name="Chợ Mẫu",
    phone="02800000000",
    email="hoadon@cho-mau.example",
    bank_account="1234567890",
    bank_name="Ngân hàng Mẫu",
)
BUYER = Buyer(
    name="Nguyễn Thị Lan",
    address="Ki-ốt A12, Chợ Mẫu",
    buyer_code="A12",
    citizen_id="079000000001",
    personal_name="Nguyễn Thị Lan",
)
PROVIDER_TAX_CODE = "0388888888"


def vat_invoice(**changes) -> InvoiceData:
    """A July 2025 market bill: rent and cleaning at 8%, electricity at 10%, a KCT fee."""
    charges = [  # (name, unit, quantity, gross, rate)
        ("Phí thuê ki-ốt số A12 tháng 07/2025", "Tháng", Decimal(1), 2_500_000, "8%"),
        ("Phí vệ sinh tháng 07/2025", "Tháng", Decimal(1), 20_000, "8%"),
        ("Tiền điện tháng 06/2025", "kWh", Decimal(125), 61_000, "10%"),
        ("Phí trông giữ xe tháng 07/2025", "Tháng", Decimal(1), 30_000, "KCT"),
    ]
    breakdown = vat_inclusive_breakdown(
        [GrossLine(gross_vnd=gross, rate=rate) for *_, gross, rate in charges]
    )
    lines = [
        InvoiceLine(
            number=position,
            code=f"P{position:02d}",
            name=name,
            unit=unit,
            quantity=quantity,
            unit_price=Decimal(amounts.net_vnd) / quantity,
            net_amount_vnd=amounts.net_vnd,
            vat_rate=rate,
        )
        for position, ((name, unit, quantity, _, rate), amounts) in enumerate(
            zip(charges, breakdown.lines, strict=True), start=1
        )
    ]
    fields = {
        "invoice_id": "DLHDon-0b7c2a52-5d0e-4c1e-9a7e-3f1d2c4b5a60",
        "form": "1",
        "serial": "C25TMK",
        "number": 1,
        "issue_date": date(2025, 7, 1),
        "seller": SELLER,
        "buyer": BUYER,
        "lines": lines,
        "totals": breakdown,
        "provider_tax_code": PROVIDER_TAX_CODE,
        "extra": [
            ExtraField(name="KyThu", kind="string", value="2025-07"),
            ("MaThanhToan", "string", "M40A12T07"),
        ],
    }
    fields.update(changes)
    return InvoiceData(**fields)


def sales_invoice(**changes) -> InvoiceData:
    amounts = [1_500_000, 30_000]
    lines = [
        InvoiceLine(
            number=1,
            name="Phí thuê sạp số B07 tháng 07/2025",
            unit="Tháng",
            quantity=1,
            unit_price=1_500_000,
            net_amount_vnd=1_500_000,
        ),
        InvoiceLine(
            number=2,
            name="Phí vệ sinh tháng 07/2025",
            unit="m2",
            quantity=Decimal("12.5"),
            unit_price=Decimal("2400"),
            net_amount_vnd=30_000,
        ),
    ]
    fields = {
        "invoice_id": "DLHDon-6a1f0e9d-8c2b-4f3a-b5d4-e7c6a9b8d0f1",
        "form": "2",
        "serial": "C25TBH",
        "number": 27,
        "issue_date": date(2025, 7, 2),
        "seller": SELLER,
        "buyer": Buyer(name="Trần Văn Bình", personal_name="Trần Văn Bình", buyer_code="B07"),
        "lines": lines,
        "totals": sales_invoice_totals(amounts),
        "provider_tax_code": PROVIDER_TAX_CODE,
        "payment_method": "TM/CK",
    }
    fields.update(changes)
    return InvoiceData(**fields)


def replacement_invoice() -> InvoiceData:
    return vat_invoice(
        number=2,
        issue_date=date(2025, 7, 3),
        related=RelatedInvoice(
            nature=1,
            form="1",
            serial="C25TMK",
            number=1,
            issue_date=date(2025, 7, 1),
            note="Thay thế do sai tên người mua",
        ),
    )


def assert_matches_golden(name: str, output: bytes) -> None:
    path = GOLDEN_DIR / name
    if os.environ.get("MARKET40_UPDATE_GOLDEN") == "1":
        path.write_bytes(output)
    assert path.exists(), f"{path} is missing; run with MARKET40_UPDATE_GOLDEN=1 and review it"
    assert output == path.read_bytes()


def invoice_root(path: Path) -> etree._Element:
    root = safe_parse(path.read_bytes())
    return root if root.tag == "HDon" else root.find("DLieu/HDon")


def child_tags(element: etree._Element) -> list[str]:
    return [child.tag for child in element if isinstance(child.tag, str)]


# ---------------------------------------------------------------------------------------------
# Output shape


def test_the_vat_invoice_matches_its_golden_file_byte_for_byte():
    assert_matches_golden("vat-invoice.xml", build_invoice_xml(vat_invoice()))


def test_the_sales_invoice_matches_its_golden_file_byte_for_byte():
    assert_matches_golden("sales-invoice.xml", build_invoice_xml(sales_invoice()))


@pytest.mark.parametrize("make", [vat_invoice, sales_invoice, replacement_invoice])
def test_the_output_is_one_line_of_utf8_after_the_xml_declaration(make):
    output = build_invoice_xml(make())
    assert output.startswith(b'<?xml version="1.0" encoding="UTF-8"?><HDon>')
    assert b"\n" not in output and b"\r" not in output and b"\t" not in output
    assert "Chợ Mẫu" in output.decode("utf-8")  # raw UTF-8, not character references
    assert build_invoice_xml(make(), xml_declaration=False).startswith(b"<HDon><DLHDon Id=")


def test_hdon_has_no_namespace_and_no_attributes():
    root = etree.fromstring(build_invoice_xml(vat_invoice()))
    assert root.tag == "HDon"
    assert root.attrib == {}
    assert root.nsmap == {}
    assert all(not element.nsmap for element in root.iter())


def test_the_signature_block_is_left_empty_for_the_signer():
    root = etree.fromstring(build_invoice_xml(vat_invoice()))
    assert child_tags(root) == ["DLHDon", "DSCKS"]  # no DLQRCode, no MCCQT (§4.8)
    signatures = root.find("DSCKS")
    assert child_tags(signatures) == ["NBan", "NMua", "CCKSKhac"]
    assert all(len(block) == 0 and not block.text for block in signatures)
    assert root.find("DLHDon").get("Id") == "DLHDon-0b7c2a52-5d0e-4c1e-9a7e-3f1d2c4b5a60"


@pytest.mark.parametrize("make", [vat_invoice, sales_invoice, replacement_invoice])
def test_every_section_follows_the_element_order_of_the_spec(make):
    root = etree.fromstring(build_invoice_xml(make()))
    for section, path in SECTION_PATHS.items():
        for element in root.findall(path):
            tags = child_tags(element)
            assert len(tags) == len(set(tags)) or section == "HHDVu", (section, tags)
            order = SPEC_ORDER[section]
            assert all(tag in order for tag in tags), (section, tags)
            assert tags == sorted(tags, key=order.index), (section, tags)


@pytest.mark.skipif(not REAL_INVOICES, reason=NO_REAL)
@pytest.mark.parametrize("path", REAL_INVOICES, ids=lambda path: path.name)
def test_shared_elements_come_in_the_same_order_as_in_each_real_invoice(path):
    real = invoice_root(path)
    ours = etree.fromstring(build_invoice_xml(replacement_invoice()))
    compared = 0
    for section, section_path in SECTION_PATHS.items():
        real_element, our_element = real.find(section_path), ours.find(section_path)
        if real_element is None or our_element is None:
            continue
        real_tags, our_tags = child_tags(real_element), child_tags(our_element)
        shared = set(real_tags) & set(our_tags)
        assert [t for t in our_tags if t in shared] == [t for t in real_tags if t in shared], (
            section,
            real_tags,
            our_tags,
        )
        compared += 1
    assert compared >= 10


def test_numbers_are_plain_with_no_separators_exponents_or_trailing_zeros():
    root = etree.fromstring(build_invoice_xml(vat_invoice()))
    electricity = root.findall("DLHDon/NDHDon/DSHHDVu/HHDVu")[2]
    assert electricity.findtext("SLuong") == "125"
    assert electricity.findtext("DGia") == "443.64"  # 55,455 / 125
    assert electricity.findtext("ThTien") == "55455"
    assert root.findtext("DLHDon/TTChung/SHDon") == "1"
    assert root.findtext("DLHDon/TTChung/NLap") == "2025-07-01"

    big = vat_invoice(
        lines=[
            dataclasses.replace(
                line, quantity=Decimal("1E+1"), unit_price=Decimal(line.net_amount_vnd) / 10
            )
            for line in vat_invoice().lines
        ]
    )
    kiosk = etree.fromstring(build_invoice_xml(big)).find("DLHDon/NDHDon/DSHHDVu/HHDVu")
    assert (kiosk.findtext("SLuong"), kiosk.findtext("DGia")) == ("10", "231481.5")


def test_the_vat_invoice_totals_are_written_per_rate_group():
    root = etree.fromstring(build_invoice_xml(vat_invoice()))
    totals = root.find("DLHDon/NDHDon/TToan")
    groups = [
        (entry.findtext("TSuat"), entry.findtext("ThTien"), entry.findtext("TThue"))
        for entry in totals.findall("THTTLTSuat/LTSuat")
    ]
    assert groups == [("8%", "2333333", "186667"), ("10%", "55455", "5545"), ("KCT", "30000", "0")]
    assert totals.findtext("TgTCThue") == "2418788"
    assert totals.findtext("TgTThue") == "192212"
    assert totals.findtext("TgTTTBSo") == "2611000"
    assert totals.findtext("TgTTTBChu") == "Hai triệu sáu trăm mười một nghìn đồng"
    assert totals.find("TTCKTMai") is None  # no trade-discount line


def test_a_sales_invoice_carries_no_vat_fields():
    root = etree.fromstring(build_invoice_xml(sales_invoice()))
    assert root.findtext("DLHDon/TTChung/THDon") == "Hóa đơn bán hàng"
    assert root.findtext("DLHDon/TTChung/KHMSHDon") == "2"
    for tag in ("TSuat", "THTTLTSuat", "LTSuat", "TgTCThue", "TgTThue", "TThue"):
        assert root.find(f".//{tag}") is None, tag
    assert child_tags(root.find("DLHDon/NDHDon/TToan")) == ["TgTTTBSo", "TgTTTBChu"]
    assert root.findtext("DLHDon/NDHDon/TToan/TgTTTBSo") == "1530000"


def test_a_replacement_invoice_names_the_invoice_it_replaces_at_the_end_of_ttchung():
    root = etree.fromstring(build_invoice_xml(replacement_invoice()))
    general = root.find("DLHDon/TTChung")
    assert child_tags(general)[-2:] == ["TTHDLQuan", "TTKhac"]
    related = general.find("TTHDLQuan")
    assert [(child.tag, child.text) for child in related] == [
        ("TCHDon", "1"),
        ("LHDCLQuan", "1"),
        ("KHMSHDCLQuan", "1"),
        ("KHHDCLQuan", "C25TMK"),
        ("SHDCLQuan", "1"),
        ("NLHDCLQuan", "2025-07-01"),
        ("GChu", "Thay thế do sai tên người mua"),
    ]


def test_a_trade_discount_line_is_subtracted_and_reported_in_ttckt_mai():
    lines = [
        InvoiceLine(
            number=1, name="Phí thuê ki-ốt", unit="Tháng", quantity=1, unit_price=1_000_000,
            net_amount_vnd=1_000_000, vat_rate="8%",
        ),
        InvoiceLine(number=2, name="Chiết khấu thuê dài hạn", kind=3, net_amount_vnd=100_000,
                    vat_rate="8%"),
        InvoiceLine(number=3, name="Ghi chú: thanh toán trước ngày 10", kind=4),
    ]  # fmt: skip
    totals = VatBreakdown(
        lines=(),
        groups=(RateGroup(rate="8%", net_vnd=900_000, vat_vnd=72_000),),
        total_net_vnd=900_000,
        total_vat_vnd=72_000,
        total_payable_vnd=972_000,
    )
    output = build_invoice_xml(vat_invoice(lines=lines, totals=totals))
    summary = parse_invoice_summary(output)
    assert summary["trade_discount"] == 100_000
    assert summary["identity_problems"] == []
    note = etree.fromstring(output).findall("DLHDon/NDHDon/DSHHDVu/HHDVu")[2]
    assert child_tags(note) == ["TChat", "STT", "THHDVu"]


def test_words_given_in_another_suffix_style_are_written_as_given():
    data = vat_invoice(amount_in_words="Hai triệu sáu trăm mười một nghìn đồng chẵn./.")
    root = etree.fromstring(build_invoice_xml(data))
    assert root.findtext(".//TgTTTBChu") == "Hai triệu sáu trăm mười một nghìn đồng chẵn./."


def test_our_own_invoices_read_back_with_no_identity_problems():
    for make in (vat_invoice, sales_invoice, replacement_invoice):
        summary = parse_invoice_summary(build_invoice_xml(make()))
        assert summary["identity_problems"] == []
        assert summary["rate_problems"] == []
        assert summary["words_match"] is True
    summary = parse_invoice_summary(build_invoice_xml(vat_invoice()))
    assert (summary["form"], summary["serial"], summary["number"]) == ("1", "C25TMK", 1)
    assert summary["issue_date"] == date(2025, 7, 1)
    assert summary["seller_tax_code"] == "0399999999"
    assert summary["buyer_name"] == "Nguyễn Thị Lan"
    assert summary["total_payable"] == 2_611_000
    assert len(summary["lines"]) == 4


# ---------------------------------------------------------------------------------------------
# Validation


def _replace_line(data: InvoiceData, index: int, **changes) -> list[InvoiceLine]:
    lines = list(data.lines)
    lines[index] = dataclasses.replace(lines[index], **changes)
    return lines


INVALID = {
    "serial of another year": (lambda: vat_invoice(serial="C24TMK"), "TTChung/KHHDon"),
    "serial with a bad letter": (lambda: vat_invoice(serial="C25AMK"), "TTChung/KHHDon"),
    "serial too long": (lambda: vat_invoice(serial="C25TMKX"), "TTChung/KHHDon"),
    "number zero": (lambda: vat_invoice(number=0), "TTChung/SHDon"),
    "number of nine digits": (lambda: vat_invoice(number=100_000_000), "TTChung/SHDon"),
    "unsupported form": (lambda: vat_invoice(form="3"), "TTChung/KHMSHDon"),
    "foreign currency": (lambda: vat_invoice(currency="USD"), "TTChung/DVTTe"),
    "datetime as issue date": (
        lambda: vat_invoice(issue_date=datetime(2025, 7, 1, 9, 0)),
        "TTChung/NLap",
    ),
    "seller tax code of 9 digits": (
        lambda: vat_invoice(seller=dataclasses.replace(SELLER, tax_code="039999999")),
        "NBan/MST",
    ),
    "seller tax code with letters": (
        lambda: vat_invoice(seller=dataclasses.replace(SELLER, tax_code="0399999999-AB1")),
        "NBan/MST",
    ),
    "provider tax code missing": (lambda: vat_invoice(provider_tax_code=""), "MSTTCGP"),
    "buyer citizen id of 9 digits": (
        lambda: vat_invoice(buyer=dataclasses.replace(BUYER, citizen_id="079000001")),
        "NMua/CCCDan",
    ),
    "invoice id starting with a digit": (
        lambda: vat_invoice(invoice_id="86afdb6b-58c5-4553-9657-15d70e30160b"),
        "DLHDon/@Id",
    ),
    "line break in a name": (
        lambda: vat_invoice(seller=dataclasses.replace(SELLER, name="Chợ\nMẫu")),
        "NBan/Ten",
    ),
    "address too long": (
        lambda: vat_invoice(seller=dataclasses.replace(SELLER, address="x" * 401)),
        "NBan/DChi",
    ),
    "no lines": (lambda: vat_invoice(lines=[]), "DSHHDVu"),
    "float quantity": (
        lambda: vat_invoice(lines=_replace_line(vat_invoice(), 0, quantity=1.0)),
        "HHDVu[1]/SLuong",
    ),
    "unit price with 7 decimals": (
        lambda: vat_invoice(
            lines=_replace_line(vat_invoice(), 2, unit_price=Decimal("443.6400001"))
        ),
        "HHDVu[3]/DGia",
    ),
    "ThTien not quantity times price": (
        lambda: vat_invoice(lines=_replace_line(vat_invoice(), 0, unit_price=2_500_000)),
        "HHDVu[1]/ThTien",
    ),
    "duplicate line number": (
        lambda: vat_invoice(lines=_replace_line(vat_invoice(), 1, number=1)),
        "HHDVu[2]/STT",
    ),
    "unknown VAT rate": (
        lambda: vat_invoice(lines=_replace_line(vat_invoice(), 0, vat_rate="7%")),
        "HHDVu[1]/TSuat",
    ),
    "line without VAT rate on a VAT invoice": (
        lambda: vat_invoice(lines=_replace_line(vat_invoice(), 0, vat_rate=None)),
        "HHDVu[1]/TSuat",
    ),
    "VAT rate on a sales invoice": (
        lambda: sales_invoice(lines=_replace_line(sales_invoice(), 0, vat_rate="8%")),
        "HHDVu[1]/TSuat",
    ),
    "VAT totals on a sales invoice": (
        lambda: sales_invoice(totals=vat_invoice().totals),
        "TToan",
    ),
    "sales totals on a VAT invoice": (
        lambda: vat_invoice(totals=sales_invoice_totals([2_611_000])),
        "TToan",
    ),
    "sales total not the sum of its lines": (
        lambda: sales_invoice(totals=sales_invoice_totals([1_500_000, 30_001])),
        "TToan/TgTTTBSo",
    ),
    "group amount not the sum of its lines": (
        lambda: vat_invoice(lines=_replace_line(vat_invoice(), 1, kind=3)),
        "LTSuat[TSuat=8%]/ThTien",
    ),
    "group VAT off by 2 đồng": (
        lambda: vat_invoice(
            totals=dataclasses.replace(
                vat_invoice().totals,
                groups=(
                    RateGroup(rate="8%", net_vnd=2_333_333, vat_vnd=186_669),
                    *vat_invoice().totals.groups[1:],
                ),
            )
        ),
        "LTSuat[TSuat=8%]/TThue",
    ),
    "payable not net plus VAT": (
        lambda: vat_invoice(
            totals=dataclasses.replace(vat_invoice().totals, total_payable_vnd=2_611_001)
        ),
        "TToan/TgTTTBSo",
    ),
    "words of another amount": (
        lambda: vat_invoice(amount_in_words="Hai triệu sáu trăm mười hai nghìn đồng"),
        "TToan/TgTTTBChu",
    ),
    "related invoice issued later": (
        lambda: vat_invoice(
            related=RelatedInvoice(
                nature=2, form="1", serial="C25TMK", number=9, issue_date=date(2025, 7, 2)
            )
        ),
        "TTHDLQuan/NLHDCLQuan",
    ),
    "related invoice of an unknown nature": (
        lambda: vat_invoice(
            related=RelatedInvoice(
                nature=3, form="1", serial="C25TMK", number=9, issue_date=date(2025, 6, 2)
            )
        ),
        "TTHDLQuan/TCHDon",
    ),
    "bad extension data kind": (
        lambda: vat_invoice(extra=[("KyThu", "text", "2025-07")]),
        "TTKhac/TTin[1]/KDLieu",
    ),
    "note line with an amount": (
        lambda: vat_invoice(
            lines=[*vat_invoice().lines, InvoiceLine(number=9, name="x", kind=4, net_amount_vnd=1)]
        ),
        "HHDVu[5]/ThTien",
    ),
}


@pytest.mark.parametrize(("make", "field"), INVALID.values(), ids=INVALID.keys())
def test_invalid_data_is_refused_with_an_english_and_a_vietnamese_message(make, field):
    with pytest.raises(InvoiceDataError) as caught:
        build_invoice_xml(make())
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.field is not None and error.field.endswith(field), error.field
    assert str(error).startswith(error.field)
    assert error.message_vi.startswith(error.field) and error.message_vi != str(error)


def test_a_branch_tax_code_and_a_zero_padded_related_number_are_accepted():
    data = vat_invoice(
        seller=dataclasses.replace(SELLER, tax_code="0399999999-001"),
        related=RelatedInvoice(
            nature=2, form="1", serial="C25TMK", number="00000001", issue_date=date(2025, 7, 1)
        ),
    )
    root = etree.fromstring(build_invoice_xml(data))
    assert root.findtext("DLHDon/NDHDon/NBan/MST") == "0399999999-001"
    assert root.findtext("DLHDon/TTChung/TTHDLQuan/SHDCLQuan") == "00000001"


def test_the_error_messages_say_what_is_wrong_in_both_languages():
    with pytest.raises(InvoiceDataError) as caught:
        build_invoice_xml(vat_invoice(serial="C24TMK"))
    assert "year 2024" in str(caught.value) and "2025-07-01" in str(caught.value)
    assert "năm 2024" in caught.value.message_vi


# ---------------------------------------------------------------------------------------------
# Reading real invoices


@pytest.mark.skipif(not REAL_FILES, reason=NO_REAL)
@pytest.mark.parametrize("path", REAL_FILES, ids=lambda path: path.name)
def test_each_real_invoice_parses_with_no_identity_problems(path):
    summary = parse_invoice_summary(path.read_bytes())
    assert summary["identity_problems"] == []
    assert summary["words_match"] is True
    assert summary["form"] == "1"
    assert summary["total_payable"] == summary["total_net"] + summary["total_vat"]
    assert summary["tax_authority_code"].startswith("00")


@pytest.mark.skipif(not REAL_INVOICES, reason=NO_REAL)
def test_the_real_trade_discount_invoice_reads_as_the_spec_describes():
    summary = parse_invoice_summary((REAL_DIR / "invoice-06786dcf.xml").read_bytes())
    assert (summary["serial"], summary["number"]) == ("C25TAC", 1144)
    assert summary["issue_date"] == date(2025, 6, 23)
    assert summary["seller_tax_code"] == "2700952079"
    assert summary["total_net"] == 136_821_884
    assert summary["total_vat"] == 10_945_751
    assert summary["total_payable"] == 147_767_635
    assert summary["trade_discount"] == 27_142_116
    assert [line["kind"] for line in summary["lines"]].count(3) == 1
    assert summary["rate_problems"] == []


@pytest.mark.skipif(not REAL_FILES, reason=NO_REAL)
def test_the_test_environment_message_adds_up_but_its_vat_is_not_10_percent():
    # §10: its group says TThue 84,000 for 1,200,000 at 10% and was coded anyway.
    summary = parse_invoice_summary((REAL_DIR / "tdiep-202-test-env.xml").read_bytes())
    assert summary["identity_problems"] == []
    assert summary["total_vat"] == 84_000
    assert summary["rate_problems"] == ["LTSuat 10%: TThue 84000.0 ≠ ThTien 1200000 × 10% ≈ 120000"]


def test_a_broken_identity_is_reported_with_its_numbers():
    output = build_invoice_xml(vat_invoice()).replace(
        b"<TgTThue>192212</TgTThue>", b"<TgTThue>192213</TgTThue>"
    )
    problems = parse_invoice_summary(output)["identity_problems"]
    assert "TgTThue 192213 ≠ Σ LTSuat/TThue 192212" in problems
    assert "TgTTTBSo 2611000 ≠ TgTCThue 2418788 + TgTThue 192213 = 2611001" in problems


# ---------------------------------------------------------------------------------------------
# Safe parsing

XXE = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<!DOCTYPE HDon [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    b"<HDon><DLHDon><TTChung><KHHDon>&xxe;</KHHDon></TTChung></DLHDon></HDon>"
)


def _billion_laughs() -> bytes:
    """Ten levels of entities, each ten times the one before: 10^9 "lol"s if expanded."""
    entities = ['<!ENTITY lol0 "lol">']
    for level in range(1, 10):
        entities.append(f'<!ENTITY lol{level} "{f"&lol{level - 1};" * 10}">')
    return (
        '<?xml version="1.0"?><!DOCTYPE HDon [' + "".join(entities) + "]><HDon>&lol9;</HDon>"
    ).encode()


BILLION_LAUGHS = _billion_laughs()


@pytest.mark.parametrize(
    "document",
    [XXE, BILLION_LAUGHS, XXE.decode().replace("UTF-8", "UTF-16").encode("utf-16")],
    ids=["xxe", "billion-laughs", "xxe-in-utf16"],
)
def test_the_safe_parser_refuses_doctype_and_entity_declarations(document):
    with pytest.raises(UnsafeXmlError, match="DOCTYPE or ENTITY declaration") as caught:
        safe_parse(document)
    assert "XXE" in str(caught.value) and caught.value.message_vi
    with pytest.raises(UnsafeXmlError):
        parse_invoice_summary(document)


def test_the_safe_parser_refuses_documents_over_the_size_limit():
    document = build_invoice_xml(vat_invoice())
    with pytest.raises(UnsafeXmlError, match="over the 1000-byte limit"):
        safe_parse(document, max_bytes=1000)
    assert safe_parse(document, max_bytes=len(document)).tag == "HDon"


def test_malformed_or_foreign_xml_is_an_invoice_xml_error():
    with pytest.raises(InvoiceXmlError, match="malformed XML"):
        safe_parse(b"<HDon><DLHDon></HDon>")
    with pytest.raises(InvoiceXmlError, match="expected an HDon"):
        parse_invoice_summary(b'<inv:HDon xmlns:inv="urn:x"/>')
    with pytest.raises(InvoiceXmlError, match="lacks"):
        parse_invoice_summary(b"<HDon><DLHDon/></HDon>")
