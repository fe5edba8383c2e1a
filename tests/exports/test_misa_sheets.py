"""MISA SME import sheets (spec domain.md §6.1): the column sets and order of the templates,
the (*) required columns filled, dd/mm/yyyy dates, amounts as numbers, the market's account
codes. Sales vouchers: one row per invoice line; bank receipts: one row per allocation, one
NTTK voucher per transfer, adding up to the money received."""

from __future__ import annotations

import io
import re

import openpyxl
from django.db.models import Sum

from exports.models import MisaAccounts
from invoicing import services as invoicing_services
from invoicing.models import Invoice, InvoiceLine
from payments import ledger
from payments.models import Allocation
from tests.exports.conftest import MAY, export_bytes

SALES_HEADERS = [
    "Hiển thị trên sổ",
    "Hình thức bán hàng",
    "Phương thức thanh toán",
    "Kiêm phiếu xuất kho",
    "XK vào khu phi thuế quan và các TH được coi như XK",
    "Lập kèm hóa đơn",
    "Đã lập hóa đơn",
    "Ngày hạch toán (*)",
    "Ngày chứng từ (*)",
    "Số chứng từ (*)",
    "Số phiếu xuất",
    "Lý do xuất",
    "Số hóa đơn",
    "Ngày hóa đơn",
    "Mã khách hàng",
    "Tên khách hàng",
    "Địa chỉ",
    "Mã số thuế",
    "Diễn giải",
    "Nộp vào TK",
    "NV bán hàng",
    "Mã hàng (*)",
    "Tên hàng",
    "Hàng khuyến mại",
    "TK Tiền/Chi phí/Nợ (*)",
    "TK Doanh thu/Có (*)",
    "ĐVT",
    "Số lượng",
    "Đơn giá sau thuế",
    "Đơn giá",
    "Thành tiền",
    "Tỷ lệ CK (%)",
    "Tiền chiết khấu",
    "TK chiết khấu",
    "Giá tính thuế XK",
    "% thuế XK",
    "Tiền thuế XK",
    "TK thuế XK",
    "% thuế GTGT",
    "Tỷ lệ tính thuế (Thuế suất KHAC)",
    "Tiền thuế GTGT",
    "TK thuế GTGT",
    "HH không TH trên tờ khai thuế GTGT",
    "Kho",
    "TK giá vốn",
    "TK Kho",
    "Đơn giá vốn",
    "Tiền vốn",
    "Hàng hóa giữ hộ/bán hộ",
]
RECEIPT_HEADERS = [
    "Ngày hạch toán (*)",
    "Ngày chứng từ (*)",
    "Số chứng từ (*)",
    "Mã đối tượng",
    "Tên đối tượng",
    "Địa chỉ",
    "Nộp vào TK",
    "Mở tại ngân hàng",
    "Lý do thu",
    "Diễn giải lý do thu",
    "Mã nhân viên thu",
    "Diễn giải (hạch toán)",
    "TK Nợ (*)",
    "TK Có (*)",
    "Số tiền",
    "Mã đối tượng (hạch toán)",
    "Số khế ước đi vay",
    "Số khế ước cho vay",
    "Mã khoản mục chi phí",
    "Mã đơn vị",
    "Mã đối tượng THCP",
    "Mã công trình",
    "Số đơn đặt hàng",
    "Số đơn mua hàng",
    "Số hợp đồng mua",
    "Số hợp đồng bán",
    "Mã thống kê",
    "CP không hợp lý",
]
DDMMYYYY = re.compile(r"^\d{2}/\d{2}/\d{4}$")


def sheet_rows(data: bytes, title: str) -> list[list]:
    workbook = openpyxl.load_workbook(io.BytesIO(data))
    assert workbook.sheetnames == [title]
    sheet = workbook[title]
    return [list(row) for row in sheet.iter_rows()]


def required(headers: list[str]) -> list[int]:
    return [i for i, header in enumerate(headers) if header.endswith("(*)")]


# --- sales vouchers ------------------------------------------------------------------


def test_sales_vouchers_have_the_template_columns_and_one_row_per_invoice_line(month):
    rows = sheet_rows(export_bytes("misa-sales-xlsx", month), "Chứng từ bán hàng")

    header = [cell.value for cell in rows[0]]
    assert header == SALES_HEADERS and len(header) == 49
    body = rows[1:]
    lines = InvoiceLine.objects.filter(invoice__market=month.market, invoice__period=MAY)
    assert len(body) == lines.count() == 10
    for row in body:
        values = [cell.value for cell in row] + [None] * (49 - len(row))
        for index in required(SALES_HEADERS):
            assert values[index] not in (None, ""), SALES_HEADERS[index]
        for index in (7, 8, 13):  # Ngày hạch toán, Ngày chứng từ, Ngày hóa đơn
            assert DDMMYYYY.match(values[index])
        for index in (27, 29, 30, 40):  # Số lượng, Đơn giá, Thành tiền, Tiền thuế GTGT
            assert row[index].data_type == "n", SALES_HEADERS[index]
        assert (values[24], values[25], values[41]) == ("131", "5113", "33311")
    totals = Invoice.objects.filter(market=month.market, period=MAY).aggregate(
        net=Sum("total_net_vnd"), vat=Sum("total_vat_vnd")
    )
    assert sum(row[30].value for row in body) == totals["net"]
    assert sum(row[40].value for row in body) == totals["vat"]


def test_each_invoice_is_one_voucher_with_its_number_date_buyer_and_fee_codes(month):
    rows = sheet_rows(export_bytes("misa-sales-xlsx", month), "Chứng từ bán hàng")[1:]

    invoice = month.invoices[0]
    mine = [[c.value for c in row] for row in rows if row[12].value == f"{invoice.number:08d}"]
    assert len(mine) == invoice.lines.count() == 4
    assert {row[9] for row in mine} == {f"BH1{invoice.serial_code}{invoice.number:08d}"}
    assert {row[7] for row in mine} == {f"{invoice.issue_date:%d/%m/%Y}"}
    assert {row[14] for row in mine} == {invoice.buyer_code}
    assert {row[15] for row in mine} == {"Hộ kinh doanh Trần Văn Bình"}
    assert {row[17] for row in mine} == {"0312345679"}
    assert sorted(row[21] for row in mine) == ["ANNINH", "DIEN", "DTBH", "VESINH"]
    electricity = next(row for row in mine if row[21] == "DIEN")
    assert electricity[38] == "8%" and electricity[26] == "kWh"
    assert sum(row[30] for row in mine) == invoice.total_net_vnd


def test_the_market_account_codes_and_item_codes_are_used(month):
    MisaAccounts.objects.create(
        market=month.market,
        receivable_account="1311",
        revenue_account="51131",
        vat_account="333111",
        item_codes={"rent": "THUE-KIOT"},
    )

    rows = sheet_rows(export_bytes("misa-sales-xlsx", month), "Chứng từ bán hàng")[1:]

    assert {(row[24].value, row[25].value, row[41].value) for row in rows} == {
        ("1311", "51131", "333111")
    }
    assert "THUE-KIOT" in {row[21].value for row in rows}


def test_a_replaced_invoice_leaves_the_sales_vouchers_to_its_replacement(month):
    original = month.invoices[2]
    replacement = invoicing_services.invoice_replace(invoice=original, reason="Sai địa chỉ")

    rows = sheet_rows(export_bytes("misa-sales-xlsx", month), "Chứng từ bán hàng")[1:]

    numbers = {row[12].value for row in rows}
    assert f"{replacement.number:08d}" in numbers
    assert f"{original.number:08d}" not in numbers


# --- bank receipts -------------------------------------------------------------------


def test_bank_receipts_have_the_template_columns_and_add_up_to_the_money_received(month):
    rows = sheet_rows(export_bytes("misa-receipts-xlsx", month), "Thu tiền gửi")

    assert [cell.value for cell in rows[0]] == RECEIPT_HEADERS
    body = [[c.value for c in row] + [None] * (28 - len(row)) for row in rows[1:]]
    for row, cells in zip(body, rows[1:], strict=True):
        for index in required(RECEIPT_HEADERS):
            assert row[index] not in (None, ""), RECEIPT_HEADERS[index]
        assert DDMMYYYY.match(row[0]) and row[0] == row[1]
        assert cells[14].data_type == "n"
        assert row[12] == "1121"
    # Six transfers, six vouchers in bank-time order.
    vouchers = list(dict.fromkeys(row[2] for row in body))
    assert vouchers == [f"NTTK{n:05d}" for n in range(1, 7)]
    assert sum(row[14] for row in body) == sum(tx.amount_vnd for tx in month.transactions)
    # One row per allocation (A002's overpayment: its demand and its credit) + the unmatched.
    allocations = Allocation.objects.filter(transaction__in=month.transactions)
    assert len(body) == allocations.count() + 1 == 7
    a002 = [row for row in body if row[2] == "NTTK00002"]
    assert [(row[13], row[14]) for row in a002] == [
        ("131", month.demands[1].total_vnd),
        ("131", 50_000),
    ]
    assert {row[3] for row in a002} == {month.demands[1].holder.code}
    unmatched = body[-1]
    assert (unmatched[2], unmatched[13], unmatched[14]) == ("NTTK00006", "3388", 77_000)
    assert unmatched[8] == "Thu khác"


def test_an_unmatched_allocation_moves_its_money_to_the_suspense_account(month, accountant_a):
    paid = Allocation.objects.get(transaction=month.transactions[0], kind="demand")
    ledger.unmatch(allocation_id=paid.pk, user=accountant_a, note="khớp nhầm sạp")

    rows = sheet_rows(export_bytes("misa-receipts-xlsx", month), "Thu tiền gửi")[1:]

    first = [[c.value for c in row] for row in rows if row[2].value == "NTTK00001"]
    assert [(row[13], row[14]) for row in first] == [("3388", month.transactions[0].amount_vnd)]
    assert sum(row[14].value for row in rows) == sum(tx.amount_vnd for tx in month.transactions)
