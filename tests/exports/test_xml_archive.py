"""The invoice XML archive: every signed invoice of the period, byte for byte, named
``<KHHDon>_<SHDon>.xml``, with a manifest whose SHA-256 matches what was stored at signing."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile

import pytest
from django.db import connection

from exports.writers import ExportIntegrityError, write_export
from invoicing.models import Invoice
from tests.exports.conftest import MAY, export_bytes

MANIFEST_HEADERS = [
    "Tệp",
    "Ký hiệu mẫu số",
    "Ký hiệu hóa đơn",
    "Số hóa đơn",
    "Ngày lập",
    "Tên người mua",
    "MST/CCCD người mua",
    "Tiền chưa thuế",
    "Tiền thuế GTGT",
    "Tổng thanh toán",
    "Trạng thái",
    "SHA-256",
]


def manifest_rows(archive: zipfile.ZipFile) -> tuple[bytes, list[list[str]]]:
    raw = archive.read("manifest.csv")
    return raw, list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


def test_the_archive_holds_each_invoice_exactly_as_signed_and_its_manifest(month):
    archive = zipfile.ZipFile(io.BytesIO(export_bytes("xml-zip", month)))

    invoices = list(Invoice.objects.filter(market=month.market, period=MAY).order_by("number"))
    names = [f"{invoice.serial_code}_{invoice.number}.xml" for invoice in invoices]
    assert archive.namelist() == [*names, "manifest.csv"]
    assert archive.testzip() is None
    for name, invoice in zip(names, invoices, strict=True):
        assert archive.read(name) == invoice.xml_bytes

    raw, rows = manifest_rows(archive)
    assert raw.startswith(b"\xef\xbb\xbf")
    assert rows[0] == MANIFEST_HEADERS
    assert len(rows) - 1 == len(invoices) == 3
    for row, invoice in zip(rows[1:], invoices, strict=True):
        record = dict(zip(MANIFEST_HEADERS, row, strict=True))
        assert record["Tệp"] == f"{invoice.serial_code}_{invoice.number}.xml"
        assert record["SHA-256"] == invoice.sha256
        assert record["SHA-256"] == hashlib.sha256(archive.read(record["Tệp"])).hexdigest()
        assert (record["Ký hiệu mẫu số"], record["Ký hiệu hóa đơn"]) == ("1", invoice.serial_code)
        assert int(record["Số hóa đơn"]) == invoice.number
        assert record["Ngày lập"] == f"{invoice.issue_date:%d/%m/%Y}"
        assert record["Tên người mua"] == invoice.buyer_name
        assert record["MST/CCCD người mua"] == (invoice.buyer_tax_code or invoice.buyer_citizen_id)
        assert int(record["Tiền chưa thuế"]) == invoice.total_net_vnd
        assert int(record["Tiền thuế GTGT"]) == invoice.total_vat_vnd
        assert int(record["Tổng thanh toán"]) == invoice.total_payable_vnd
    assert sum(int(row[9]) for row in rows[1:]) == sum(i.total_payable_vnd for i in invoices)


def test_a_selection_archives_only_the_chosen_invoices(month):
    chosen = month.invoices[1]
    out = io.BytesIO()

    result = write_export(
        kind="xml-zip", market=month.market, period=None, out=out, invoice_ids=[chosen.pk]
    )

    archive = zipfile.ZipFile(out)
    assert archive.namelist() == [f"{chosen.serial_code}_{chosen.number}.xml", "manifest.csv"]
    assert archive.read(archive.namelist()[0]) == chosen.xml_bytes
    assert result.rows == 1 and result.totals["total_payable_vnd"] == chosen.total_payable_vnd


def test_an_invoice_whose_stored_bytes_changed_stops_the_archive(month):
    tampered = month.invoices[0]
    xml = tampered.xml_bytes.replace(b"<SHDon>1</SHDon>", b"<SHDon>9</SHDon>")
    with connection.cursor() as cursor:  # behind the model's back: it refuses any change
        cursor.execute(
            f"UPDATE {Invoice._meta.db_table} SET xml = %s WHERE id = %s", [xml, tampered.pk]
        )

    with pytest.raises(ExportIntegrityError, match="SHA-256"):
        export_bytes("xml-zip", month)


def test_a_period_without_invoices_gives_an_archive_with_only_the_header(market_a):
    out = io.BytesIO()

    result = write_export(kind="xml-zip", market=market_a, period=MAY, out=out)

    archive = zipfile.ZipFile(out)
    assert archive.namelist() == ["manifest.csv"]
    assert manifest_rows(archive)[1] == [MANIFEST_HEADERS]
    assert result.rows == 0
