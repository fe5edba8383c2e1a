"""The builder writes the invoice text itself (no element tree): byte for byte what lxml writes
for the same tree, with the canonical DLHDon the signer digests, and the same checks however
often a seller, a TTChung or a line object is reused (spec einvoice.md §3.1, §4, §6.1)."""

from __future__ import annotations

import dataclasses
import re
import unicodedata
import uuid
from decimal import Decimal

import pytest
from lxml import etree

from invoicing.rounding import sales_invoice_totals, vat_inclusive_breakdown
from invoicing.xml import (
    XML_DECLARATION,
    Buyer,
    ExtraField,
    InvoiceDataError,
    InvoiceLine,
    build_invoice_xml,
    build_unsigned_invoice,
    new_invoice_id,
)
from tests.invoicing.test_xml_builder import (
    BUYER,
    SELLER,
    replacement_invoice,
    sales_invoice,
    vat_invoice,
)

# Everything XML lets through that an escaper could get wrong: markup characters, a CDATA end,
# quotes, C1 and line-separator characters (legal, not line breaks for §3.1), an astral
# character, a no-break space, a decomposed letter (written NFC), and look-alike markup.
HOSTILE = "Chợ & <Bến> \"Thành\" 'A' ]]> x\u0085y\u2028z \U0001f600\u00a0Đe\u0301 &amp; /> <x/>"


def hostile_invoice():
    line = vat_invoice().lines[0]
    return vat_invoice(
        seller=dataclasses.replace(SELLER, name=HOSTILE, address=HOSTILE, bank_name=HOSTILE),
        buyer=dataclasses.replace(
            BUYER,
            name=HOSTILE,
            address=HOSTILE,
            extra=(ExtraField("Ghi chú <&>", "string", HOSTILE),),
        ),
        lines=[dataclasses.replace(line, name=HOSTILE, unit="m<2>"), *vat_invoice().lines[1:]],
        payment_method="TM & CK",
        extra=[ExtraField("Kỳ", "string", HOSTILE)],
        totals_extra=[("Ghi chú", "string", HOSTILE)],
    )


def note_only_invoice():
    """An adjustment of information only, as services writes it: one note line, zero totals,
    a buyer with no field: both NMua and THTTLTSuat are empty elements."""
    return vat_invoice(
        buyer=Buyer(),
        lines=[InvoiceLine(number=1, name="Điều chỉnh: sai địa chỉ người mua", kind=4)],
        totals=vat_inclusive_breakdown([]),
        extra=[],
    )


def lxml_writes(xml: bytes) -> bytes:
    """What lxml's serialiser writes for the tree of ``xml`` (the old builder's output)."""
    root = etree.fromstring(xml)
    return XML_DECLARATION + etree.tostring(root, encoding="UTF-8", xml_declaration=False)


def test_hostile_text_is_escaped_exactly_as_lxml_escapes_it():
    xml = build_invoice_xml(hostile_invoice())

    assert xml == lxml_writes(xml)
    root = etree.fromstring(xml)
    expected = unicodedata.normalize("NFC", HOSTILE)
    assert root.findtext("DLHDon/NDHDon/NBan/Ten") == expected
    assert root.findtext("DLHDon/NDHDon/NMua/TTKhac/TTin/DLieu") == expected
    assert root.findtext("DLHDon/NDHDon/DSHHDVu/HHDVu/THHDVu") == expected
    assert b"&amp;amp;" in xml and b"]]&gt;" in xml and "😀".encode() in xml
    assert b"\n" not in xml and b"\r" not in xml


def test_empty_elements_are_written_as_lxml_wrote_them():
    xml = build_invoice_xml(note_only_invoice())
    assert b"<NMua/>" in xml and b"<THTTLTSuat/>" in xml
    assert xml == lxml_writes(xml)

    # An extension field whose value is empty text keeps its end tag, as lxml writes text "".
    empty_value = build_invoice_xml(vat_invoice(extra=[ExtraField("Trống", "string", "  ")]))
    assert "<TTruong>Trống</TTruong><KDLieu>string</KDLieu><DLieu></DLieu>".encode() in empty_value


@pytest.mark.parametrize(
    "make",
    [vat_invoice, sales_invoice, replacement_invoice, note_only_invoice, hostile_invoice],
    ids=["vat", "sales", "replacement", "note-only", "hostile"],
)
def test_the_built_invoice_carries_the_canonical_dlhdon_and_what_the_signer_reads(make):
    built = build_unsigned_invoice(make())

    assert built.xml == build_invoice_xml(make())
    root = etree.fromstring(built.xml)
    dlhdon = root.find("DLHDon")
    assert built.dlhdon_c14n == etree.tostring(dlhdon, method="c14n")
    assert built.invoice_id == dlhdon.get("Id")
    assert built.seller_tax_code == root.findtext("DLHDon/NDHDon/NBan/MST")
    assert built.amount_in_words == root.findtext("DLHDon/NDHDon/TToan/TgTTTBChu")
    without_declaration = build_unsigned_invoice(make(), xml_declaration=False)
    assert XML_DECLARATION + without_declaration.xml == built.xml
    assert without_declaration.dlhdon_c14n == built.dlhdon_c14n


def test_building_the_same_data_again_writes_the_same_bytes():
    data = vat_invoice(lines=tuple(vat_invoice().lines))
    assert build_invoice_xml(data) == build_invoice_xml(data) == build_invoice_xml(vat_invoice())


def test_a_kept_ttchung_still_checks_each_invoice_number():
    build_invoice_xml(vat_invoice(extra=()))
    for number in (0, True, 100_000_000):
        with pytest.raises(InvoiceDataError) as caught:
            build_invoice_xml(vat_invoice(extra=(), number=number))
        assert caught.value.field == "DLHDon/TTChung/SHDon"
    root = etree.fromstring(build_invoice_xml(vat_invoice(extra=(), number=42)))
    assert root.findtext("DLHDon/TTChung/SHDon") == "42"


def test_a_kept_seller_does_not_vouch_for_a_different_one():
    build_invoice_xml(vat_invoice())
    with pytest.raises(InvoiceDataError) as caught:
        build_invoice_xml(vat_invoice(seller=dataclasses.replace(SELLER, tax_code="12345")))
    assert caught.value.field == "NDHDon/NBan/MST"


def test_a_line_object_reused_by_another_invoice_is_checked_against_that_invoice_form():
    line = InvoiceLine(
        number=1, name="Phí vệ sinh", unit="tháng", quantity=1, unit_price=20_000,
        net_amount_vnd=20_000,
    )  # fmt: skip
    sales = sales_invoice(lines=[line], totals=sales_invoice_totals([20_000]))
    assert "<THHDVu>Phí vệ sinh</THHDVu>".encode() in build_invoice_xml(sales)

    vat = vat_invoice(lines=[line], totals=vat_inclusive_breakdown([]))
    with pytest.raises(InvoiceDataError) as caught:
        build_invoice_xml(vat)  # a VAT invoice needs the line's TSuat
    assert caught.value.field == "NDHDon/DSHHDVu/HHDVu[1]/TSuat"

    with pytest.raises(InvoiceDataError) as caught:
        build_invoice_xml(sales_invoice(lines=[line, line], totals=sales_invoice_totals([1, 1])))
    assert caught.value.field == "NDHDon/DSHHDVu/HHDVu[2]/STT"


def test_equal_lines_of_other_types_are_still_refused():
    good = InvoiceLine(
        number=1, name="Tiền điện", unit="kWh", quantity=Decimal(2), unit_price=Decimal(1500),
        net_amount_vnd=3000,
    )  # fmt: skip
    build_invoice_xml(sales_invoice(lines=[good], totals=sales_invoice_totals([3000])))
    for changes, field in (
        ({"quantity": 2.0}, "HHDVu[1]/SLuong"),
        ({"number": True}, "HHDVu[1]/STT"),
        ({"net_amount_vnd": Decimal(3000)}, "HHDVu[1]/ThTien"),
    ):
        line = dataclasses.replace(good, **changes)
        with pytest.raises(InvoiceDataError) as caught:
            build_invoice_xml(sales_invoice(lines=[line], totals=sales_invoice_totals([3000])))
        assert caught.value.field.endswith(field), changes


def test_new_invoice_ids_are_random_version_4_uuids_and_ncnames():
    ids = [new_invoice_id() for _ in range(2000)]

    assert len(set(ids)) == len(ids)
    for invoice_id in ids:
        assert re.fullmatch(r"DLHDon-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", invoice_id)
        value = uuid.UUID(invoice_id.removeprefix("DLHDon-"))
        assert value.version == 4 and value.variant == uuid.RFC_4122
        assert f"DLHDon-{value}" == invoice_id


def test_sellers_that_cannot_be_kept_are_written_or_refused_as_any_other():
    listed = dataclasses.replace(SELLER, extra=[])  # an empty list of extension fields
    assert build_invoice_xml(vat_invoice(seller=listed)) == build_invoice_xml(vat_invoice())
    with pytest.raises(InvoiceDataError) as caught:
        build_invoice_xml(vat_invoice(seller=dataclasses.replace(SELLER, phone=["0283"])))
    assert caught.value.field == "NDHDon/NBan/SDThoai"
