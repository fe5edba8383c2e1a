"""manage.py import_statement CONNECTION_ID FILE [--bank] [--profile] [--dry-run]."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from payments.models import BankTransaction
from tests.payments.test_statement_layouts import (
    SAMPLE,
    statement_connection,
    write_statement,
)


@pytest.fixture
def bank_a(market_a):
    return statement_connection(market_a)


def run(*args):
    out, err = StringIO(), StringIO()
    call_command("import_statement", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_a_dry_run_prints_what_it_would_create_and_writes_nothing(tmp_path, bank_a):
    path = write_statement(tmp_path, "techcombank", SAMPLE, fmt="xlsx")

    out, _err = run(bank_a.pk, str(path), "--dry-run")

    assert "Sao kê Techcombank" in out
    assert "Sẽ tạo 3 giao dịch" in out and "Chạy thử: chưa ghi gì." in out
    assert "dòng 6: 02/05/2026 +500.000 đ" in out
    assert not BankTransaction.objects.exists()


def test_an_import_then_a_re_import_reports_created_then_skipped(tmp_path, bank_a):
    path = write_statement(tmp_path, "bidv", SAMPLE)

    out, _err = run(bank_a.pk, str(path), "--bank", "bidv")
    again, _err = run(bank_a.pk, str(path), "--bank", "bidv")

    assert "Đã tạo 3 giao dịch; đối soát: 0 khớp, 2 chờ xử lý, 1 tiền ra." in out
    assert "Đã tạo 0 giao dịch" in again and "Bỏ qua 3 giao dịch đã có" in again
    assert BankTransaction.objects.count() == 3


def test_bad_rows_are_printed_with_their_numbers_and_the_command_fails(tmp_path, bank_a):
    path = write_statement(tmp_path, "vcb", SAMPLE)
    path.write_text(
        path.read_text(encoding="utf-8-sig").replace(";500,000;", ";500,000.5;"), encoding="utf-8"
    )
    err = StringIO()

    with pytest.raises(CommandError, match="1 dòng lỗi; chưa ghi gì"):
        call_command("import_statement", bank_a.pk, str(path), stdout=StringIO(), stderr=err)

    assert "Dòng 8: số tiền ghi có “500,000.5” có phần lẻ" in err.getvalue()
    assert not BankTransaction.objects.exists()


def test_a_json_profile_file_is_used_for_another_bank(tmp_path, bank_a):
    profile = tmp_path / "bank.json"
    profile.write_text(
        json.dumps(
            {
                "name": "Sacombank",
                "columns": {
                    "date": "Ngày",
                    "credit": "Có",
                    "debit": "Nợ",
                    "description": "Diễn giải",
                },
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    statement = tmp_path / "scb.csv"
    statement.write_text('Ngày,Nợ,Có,Diễn giải\n02/05/2026,,"300,000",tien phi\n', encoding="utf-8")

    out, _err = run(bank_a.pk, str(statement), "--profile", str(profile))

    assert "Sao kê Sacombank" in out and "Đã tạo 1 giao dịch" in out


def test_unknown_connection_and_missing_file_are_clear_errors(tmp_path, bank_a):
    with pytest.raises(CommandError, match="Không tìm thấy kết nối"):
        run("cn-nope", "x.csv")
    with pytest.raises(CommandError, match="Không tìm thấy tệp"):
        run(bank_a.pk, str(tmp_path / "missing.csv"))
