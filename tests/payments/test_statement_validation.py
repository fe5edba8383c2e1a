"""A statement with a bad row is refused whole: every problem is reported by its
spreadsheet row number, in Vietnamese, and nothing is written. A dry run writes nothing
either. Money is whole đồng, exactly."""

from __future__ import annotations

import pytest

from market40.errors import InvalidInput
from payments.models import BankConnection, BankTransaction
from payments.statements import StatementRejected, parse_amount, statement_import
from tests.payments.test_statement_layouts import (
    SAMPLE,
    statement_connection,
    write_statement,
)


@pytest.fixture
def bank_a(market_a):
    return statement_connection(market_a)


def corrupt(path, old: str, new: str):
    text = path.read_text(encoding="utf-8-sig")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_a_bad_date_is_reported_by_row_number_and_nothing_is_written(tmp_path, bank_a):
    path = corrupt(write_statement(tmp_path, "vcb", SAMPLE), "03/05/2026", "31/02/2026")

    with pytest.raises(StatementRejected) as caught:
        statement_import(connection=bank_a, path=path)

    assert [str(e) for e in caught.value.report.errors] == [
        "Dòng 10: ngày giao dịch “31/02/2026” không đúng định dạng "
        "(cần dd/mm/yyyy hoặc dd/mm/yyyy HH:MM:SS)"
    ]
    assert "chưa ghi gì" in caught.value.message
    assert not BankTransaction.objects.exists()


def test_every_bad_row_is_listed_not_only_the_first(tmp_path, bank_a):
    path = write_statement(tmp_path, "mb", SAMPLE)
    corrupt(path, ",500.000,", ',"500.000,50",')
    corrupt(path, ",11.000,,", ',"11,000",,')

    with pytest.raises(StatementRejected) as caught:
        statement_import(connection=bank_a, path=path)

    messages = [str(e) for e in caught.value.report.errors]
    assert messages[0].startswith("Dòng 7: số tiền ghi có “500.000,50” có phần lẻ")
    assert messages[1].startswith("Dòng 8: số tiền ghi nợ “11,000” không đúng định dạng")
    assert not BankTransaction.objects.exists()


def test_a_row_with_both_debit_and_credit_is_refused(tmp_path, bank_a):
    path = corrupt(
        write_statement(tmp_path, "vcb", SAMPLE), ";11,000;;10,489", ";11,000;11,000;10,489"
    )

    with pytest.raises(StatementRejected) as caught:
        statement_import(connection=bank_a, path=path)

    assert [str(e) for e in caught.value.report.errors] == [
        "Dòng 9: có cả số tiền ghi nợ và ghi có trên một dòng"
    ]


def test_a_row_with_neither_debit_nor_credit_is_refused(tmp_path, bank_a):
    path = corrupt(write_statement(tmp_path, "vcb", SAMPLE), ";11,000;;10,489", ";;;10,489")

    with pytest.raises(StatementRejected) as caught:
        statement_import(connection=bank_a, path=path)

    assert [str(e) for e in caught.value.report.errors] == [
        "Dòng 9: không có số tiền ghi nợ hay ghi có"
    ]


def test_a_transaction_row_that_lost_its_date_is_refused(tmp_path, bank_a):
    path = corrupt(write_statement(tmp_path, "vcb", SAMPLE), "3;03/05/2026;", "3;;")

    with pytest.raises(StatementRejected) as caught:
        statement_import(connection=bank_a, path=path)

    assert [str(e) for e in caught.value.report.errors] == ["Dòng 10: thiếu ngày giao dịch"]


def test_a_header_without_a_required_column_names_the_missing_column(tmp_path, bank_a):
    path = corrupt(write_statement(tmp_path, "vcb", SAMPLE), "Số tiền ghi có/Credit", "Cột khác")

    with pytest.raises(InvalidInput) as caught:
        statement_import(connection=bank_a, path=path, bank="vcb")

    assert "thiếu cột ghi có" in caught.value.message
    assert not BankTransaction.objects.exists()


def test_a_statement_of_another_account_is_refused(tmp_path, bank_a):
    path = corrupt(write_statement(tmp_path, "vcb", SAMPLE), "0071000123456", "1903999888777")

    with pytest.raises(StatementRejected) as caught:
        statement_import(connection=bank_a, path=path)

    assert "1903999888777" in caught.value.message or "1903999888777" in str(
        caught.value.report.errors[0]
    )
    assert not BankTransaction.objects.exists()


def test_a_file_that_is_not_csv_or_xlsx_is_refused(tmp_path, bank_a):
    path = tmp_path / "saoke.pdf"
    path.write_bytes(b"%PDF-1.4")

    with pytest.raises(InvalidInput) as caught:
        statement_import(connection=bank_a, path=path)

    assert ".csv hoặc .xlsx" in caught.value.message


def test_a_dry_run_reports_what_it_would_create_and_writes_nothing(tmp_path, bank_a):
    before = BankConnection.objects.values().get(pk=bank_a.pk)

    report = statement_import(
        connection=bank_a, path=write_statement(tmp_path, "vcb", SAMPLE), dry_run=True
    )

    assert report.dry_run and report.created == 0
    assert [(x.row, x.amount_vnd) for x in report.to_create] == [
        (8, 500_000),
        (9, 11_000),
        (10, 1_250_000),
    ]
    assert report.money_in_vnd == 1_750_000 and report.money_out_vnd == 11_000
    assert not BankTransaction.objects.exists()
    assert BankConnection.objects.values().get(pk=bank_a.pk) == before


@pytest.mark.parametrize(
    "value, thousands, expected",
    [
        ("1,234,567", ",", 1_234_567),
        ("1.234.567", ".", 1_234_567),
        ("1,234,567.00", ",", 1_234_567),
        ("1.234.567,00", ".", 1_234_567),
        ("1234567", ",", 1_234_567),
        ("500", ".", 500),
        ("-11,000", ",", -11_000),
        ("11.000 VND", ".", 11_000),
        (1_234_567, ",", 1_234_567),
        (1_234_567.0, ",", 1_234_567),
        ("", ",", None),
        (None, ",", None),
    ],
)
def test_amounts_are_read_as_exact_whole_dong(value, thousands, expected):
    assert parse_amount(value, thousands=thousands, what="số tiền") == expected


@pytest.mark.parametrize(
    "value, thousands",
    [
        ("1,234,567.50", ","),
        ("1.234.567,5", "."),
        ("1.234.567", ","),
        ("1,234,567", "."),
        ("12,34", ","),
        ("11,000", "."),
        ("11.000", ","),
        (1234.5, ","),
        ("abc", ","),
        (True, ","),
    ],
)
def test_fractions_and_foreign_formats_are_refused(value, thousands):
    from payments.statements import CellError

    with pytest.raises(CellError):
        parse_amount(value, thousands=thousands, what="số tiền")
