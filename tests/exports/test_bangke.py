"""The invoice list (bảng kê hóa đơn) as XLSX and CSV: Vietnamese headers, one row per invoice
and VAT rate, numbers as numbers, dd/mm/yyyy dates, the settling transfers, a totals row."""

from __future__ import annotations

import csv
import io
import re

import openpyxl
from django.db.models import Sum

from invoicing import services as invoicing_services
from invoicing.models import Invoice, InvoiceLine
from tests.exports.conftest import MAY, export_bytes

HEADERS = [
    "STT",
    "Ký hiệu mẫu số, ký hiệu hóa đơn",
    "Số hóa đơn",
    "Ngày lập",
    "Mã CQT",
    "Tên người mua",
    "MST/CCCD người mua",
    "Mã ki-ốt/sạp",
    "Doanh thu chưa thuế",
    "Thuế suất",
    "Tiền thuế GTGT",
    "Tổng cộng",
    "Ngày thanh toán",
    "Mã tham chiếu ngân hàng",
    "Trạng thái hóa đơn",
]
DDMMYYYY = re.compile(r"^\d{2}/\d{2}/\d{4}$")


def db_totals(market, *, exclude_replaced=True) -> tuple[int, int, int]:
    invoices = Invoice.objects.filter(market=market, period=MAY)
    if exclude_replaced:
        invoices = invoices.exclude(status="replaced")
    sums = invoices.aggregate(
        net=Sum("total_net_vnd"), vat=Sum("total_vat_vnd"), payable=Sum("total_payable_vnd")
    )
    return sums["net"], sums["vat"], sums["payable"]


def rate_groups(market) -> int:
    return (
        InvoiceLine.objects.filter(invoice__market=market, invoice__period=MAY)
        .values("invoice_id", "vat_rate")
        .distinct()
        .count()
    )


def load_sheet(data: bytes):
    workbook = openpyxl.load_workbook(io.BytesIO(data))
    assert len(workbook.worksheets) == 1
    return workbook.worksheets[0]


def test_the_xlsx_lists_each_invoice_and_rate_with_numbers_dates_and_totals(month):
    sheet = load_sheet(export_bytes("bangke-xlsx", month))

    rows = list(sheet.iter_rows())
    assert [cell.value for cell in rows[0]] == HEADERS
    body, totals = rows[1:-1], rows[-1]
    # A001 has electricity at 8 % besides its 10 % lines: two rows; A002, A003 one each.
    assert len(body) == rate_groups(month.market) == 4
    assert [row[0].value for row in body] == [1, 2, 3, 4]
    for row in body:
        for index in (2, 8, 10, 11):  # number, net, VAT, total
            assert row[index].data_type == "n" and isinstance(row[index].value, int)
        for index in (3, 12):  # issue date, payment date
            assert row[index].is_date and row[index].number_format == "dd/mm/yyyy"
        assert row[8].value + row[10].value == row[11].value
    a001_rates = [
        (row[9].value, row[8].value, row[10].value) for row in body if row[7].value == "A001"
    ]
    assert [rate for rate, _net, _vat in a001_rates] == ["8%", "10%"]
    invoice = month.invoices[0]
    assert sum(net for _r, net, _v in a001_rates) == invoice.total_net_vnd
    assert sum(vat for _r, _n, vat in a001_rates) == invoice.total_vat_vnd

    assert totals[1].value == "Tổng cộng"
    assert (totals[8].value, totals[10].value, totals[11].value) == db_totals(month.market)
    assert totals[8].data_type == "n"


def test_each_row_names_the_buyer_and_the_transfers_that_settled_it(month):
    sheet = load_sheet(export_bytes("bangke-xlsx", month))
    rows = {row[7]: row for row in sheet.iter_rows(min_row=2, values_only=True) if row[7]}

    a001, a002, a003 = month.invoices
    first = rows["A001"]
    assert first[1] == f"1{a001.serial_code}" and first[2] == a001.number
    assert first[5] == "Hộ kinh doanh Trần Văn Bình" and first[6] == "0312345679"
    assert first[4] is None  # no tax-authority code (MCCQT) yet
    assert first[12].date() == month.transactions[0].bank_time.date()
    assert first[13] == month.transactions[0].bank_reference
    assert rows["A002"][6] == "079123456789"  # a person: the citizen ID
    # Paid in two transfers: both references, the date of the last one (20/05).
    third = rows["A003"]
    assert third[13] == (
        f"{month.transactions[2].bank_reference}, {month.transactions[3].bank_reference}"
    )
    assert f"{third[12]:%d/%m/%Y}" == "20/05/2026"
    assert third[14] == "Đã ký"


def test_the_csv_has_a_bom_the_same_rows_and_plain_numbers(month):
    data = export_bytes("bangke-csv", month)

    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == HEADERS
    body, totals = rows[1:-1], rows[-1]
    assert len(body) == rate_groups(month.market)
    for row in body:
        assert DDMMYYYY.match(row[3]) and DDMMYYYY.match(row[12])
        assert row[8].isdigit() and row[10].isdigit() and row[11].isdigit()
        assert int(row[8]) + int(row[10]) == int(row[11])
    assert totals[1] == "Tổng cộng"
    assert (int(totals[8]), int(totals[10]), int(totals[11])) == db_totals(month.market)
    assert "Trần Văn Bình" in data.decode("utf-8-sig")


def test_a_replaced_invoice_is_listed_but_only_its_replacement_is_totalled(month):
    original = month.invoices[1]
    replacement = invoicing_services.invoice_replace(invoice=original, reason="Sai tên người mua")

    sheet = load_sheet(export_bytes("bangke-xlsx", month))

    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    body, totals = rows[:-1], rows[-1]
    assert len(body) == rate_groups(month.market) == 5
    statuses = {row[2]: row[14] for row in body}
    assert statuses[original.number] == "Đã bị thay thế"
    assert statuses[replacement.number].startswith("Hóa đơn thay thế cho 1")
    assert (totals[8], totals[10], totals[11]) == db_totals(month.market)
    assert totals[11] != db_totals(month.market, exclude_replaced=False)[2]


def test_a_name_that_looks_like_a_formula_stays_text(month):
    from market40.models import StallHolder

    holder = month.demands[0].holder
    StallHolder.objects.filter(pk=holder.pk).update(full_name='=HYPERLINK("http://x","y")')
    invoicing_services.invoice_replace(invoice=month.invoices[0], reason="Đổi tên người mua")

    sheet = load_sheet(export_bytes("bangke-xlsx", month))
    names = [row[5] for row in sheet.iter_rows(min_row=2) if row[5].value]
    formula = next(cell for cell in names if cell.value.startswith("="))
    assert formula.data_type == "s" and formula.value == '=HYPERLINK("http://x","y")'

    data = export_bytes("bangke-csv", month).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(data)))
    assert '\'=HYPERLINK("http://x","y")' in [row[5] for row in rows]
