"""Aged debt per stall holder (current, 1–30, 31–60, 61–90, > 90 days past due at the end of
the period) and collections per day and per connection, with what is unmatched and the
credits held at the end of the period."""

from __future__ import annotations

import io
from datetime import date

import openpyxl

from exports.writers import write_export
from market40.models import FeeDemand
from tests.exports.conftest import MAY, export_bytes

AGED_HEADERS = [
    "STT",
    "Mã tiểu thương",
    "Tên tiểu thương",
    "Sạp/ki-ốt",
    "Số phiếu còn nợ",
    "Trong hạn",
    "Quá hạn 1–30 ngày",
    "Quá hạn 31–60 ngày",
    "Quá hạn 61–90 ngày",
    "Quá hạn trên 90 ngày",
    "Tổng còn nợ",
    "Tiền thừa (ghi có)",
    "Còn phải thu sau trừ tiền thừa",
]


def rows_of(data: bytes, title: str) -> list[tuple]:
    return list(openpyxl.load_workbook(io.BytesIO(data))[title].iter_rows(values_only=True))


def aged(month, period: date) -> list[tuple]:
    out = io.BytesIO()
    write_export(kind="aged-debt-xlsx", market=month.market, period=period, out=out)
    return rows_of(out.getvalue(), "Công nợ")


def test_the_partly_paid_demand_is_aged_from_its_due_date_and_the_credit_is_shown(month):
    rows = aged(month, MAY)

    assert list(rows[0]) == AGED_HEADERS
    body, totals = rows[1:-1], rows[-1]
    partly = month.demands[3]
    overpaid = month.demands[1]
    assert [row[1] for row in body] == sorted([partly.holder.code, overpaid.holder.code])
    debtor = next(row for row in body if row[1] == partly.holder.code)
    owed = partly.total_vnd - partly.paid_vnd
    assert (date(2026, 5, 31) - partly.due_date).days == 16
    assert debtor[3] == "A004" and debtor[4] == 1
    assert debtor[5:11] == (0, owed, 0, 0, 0, owed)
    creditor = next(row for row in body if row[1] == overpaid.holder.code)
    assert creditor[10:13] == (0, 50_000, -50_000)
    outstanding = sum(
        d.total_vnd - d.paid_vnd
        for d in FeeDemand.objects.filter(market=month.market, status__in=["open", "partial"])
    )
    assert totals[1] == "Tổng cộng" and totals[10] == outstanding and totals[11] == 50_000


def test_three_months_later_the_same_debt_is_over_90_days(month):
    rows = aged(month, date(2026, 8, 1))

    debtor = next(row for row in rows[1:-1] if row[3] == "A004")
    owed = month.demands[3].total_vnd - month.demands[3].paid_vnd
    assert debtor[5:10] == (0, 0, 0, 0, owed)


def test_before_its_due_date_a_debt_is_current(month):
    FeeDemand.objects.filter(pk=month.demands[3].pk).update(due_date=date(2026, 6, 15))

    debtor = next(row for row in aged(month, MAY)[1:-1] if row[3] == "A004")

    assert debtor[5] == month.demands[3].total_vnd - month.demands[3].paid_vnd
    assert debtor[6:10] == (0, 0, 0, 0)


def test_collections_per_day_and_connection_add_up_to_the_transfers(month):
    data = export_bytes("receipts-xlsx", month)
    workbook = openpyxl.load_workbook(io.BytesIO(data))

    assert workbook.sheetnames == [
        "Theo ngày",
        "Theo tài khoản",
        "Chưa khớp cuối kỳ",
        "Tiền thừa cuối kỳ",
    ]
    days = list(workbook["Theo ngày"].iter_rows())
    assert [c.value for c in days[0]] == [
        "Ngày",
        "Số giao dịch",
        "Tiền vào",
        "Đã phân bổ vào phiếu",
        "Ghi có (tiền thừa)",
        "Chưa khớp",
    ]
    body, totals = days[1:-1], days[-1]
    assert len(body) == 31
    assert all(row[0].is_date and row[0].number_format == "dd/mm/yyyy" for row in body)
    by_day = {row[0].value.day: (row[1].value, row[2].value) for row in body}
    # 23:50 local on 6 May belongs to 6 May, whatever the server's time zone.
    assert by_day[6] == (2, month.transactions[1].amount_vnd + month.transactions[2].amount_vnd)
    assert by_day[31] == (1, 77_000)
    received = sum(tx.amount_vnd for tx in month.transactions)
    assert (totals[1].value, totals[2].value, totals[4].value, totals[5].value) == (
        6,
        received,
        50_000,
        77_000,
    )
    connections = list(workbook["Theo tài khoản"].iter_rows(values_only=True))
    assert connections[1][3] == month.connection.account.account_number
    assert connections[1][4:6] == (6, received) and connections[-1][5] == received

    unmatched = list(workbook["Chưa khớp cuối kỳ"].iter_rows(values_only=True))
    assert len(unmatched) == 3 and unmatched[1][6:8] == (77_000, 77_000)
    credits = list(workbook["Tiền thừa cuối kỳ"].iter_rows(values_only=True))
    assert credits[1:] == [
        (month.demands[1].holder.code, month.demands[1].holder.full_name, 50_000),
        ("Tổng cộng", None, 50_000),
    ]


def test_credit_from_transfers_after_the_period_is_not_counted_at_its_end(month):
    data = export_bytes("receipts-xlsx", month)
    april = io.BytesIO()
    write_export(kind="receipts-xlsx", market=month.market, period=date(2026, 4, 1), out=april)

    assert rows_of(data, "Tiền thừa cuối kỳ")[-1][2] == 50_000
    assert rows_of(april.getvalue(), "Tiền thừa cuối kỳ")[1:] == [("Tổng cộng", None, 0)]
    assert rows_of(april.getvalue(), "Chưa khớp cuối kỳ")[1][7] == 0


def test_the_age_buckets_are_current_1_30_31_60_61_90_and_over_90_days():
    from exports.writers import age_bucket

    assert [age_bucket(days) for days in (-5, 0, 1, 30, 31, 60, 61, 90, 91, 400)] == [
        0,
        0,
        1,
        1,
        2,
        2,
        3,
        3,
        4,
        4,
    ]
