"""A statement overlaps what the webhooks already delivered and earlier imports: those
lines are skipped, by bank reference or by (day, amount, content) with occurrences
counted, so genuine identical transfers survive and a re-import creates nothing."""

from __future__ import annotations

import pytest

from payments.models import BankTransaction
from payments.providers.base import Transfer
from payments.services import store_transfers
from payments.statements import statement_import
from tests.payments.test_statement_layouts import (
    SAMPLE,
    Line,
    at,
    imported,
    statement_connection,
    write_statement,
)


@pytest.fixture
def bank_a(market_a):
    return statement_connection(market_a)


def webhook(connection, number: int, line: Line, *, reference: str | None = None):
    """A transfer as a provider delivered it (its own id, a time of day)."""
    transfer = Transfer(
        provider_transaction_id=f"sepay-{number}",
        direction="in" if line.amount > 0 else "out",
        amount_vnd=abs(line.amount),
        content=line.content,
        bank_time=line.when,
        bank_reference=reference,
    )
    (tx,) = store_transfers(connection=connection, event=None, transfers=[transfer])
    return tx


def test_a_line_already_received_by_webhook_is_skipped_by_its_bank_reference(tmp_path, bank_a):
    first = SAMPLE[0]
    known = webhook(
        bank_a, 1, Line(first.when, first.amount, "other text", ""), reference="FT26122000001"
    )

    report = statement_import(connection=bank_a, path=write_statement(tmp_path, "vcb", SAMPLE))

    assert report.created == 2
    assert [line.row for line in report.duplicates] == [8]
    assert "FT26122000001" in report.duplicates[0].duplicate_of
    assert f"#{known.pk}" in report.duplicates[0].duplicate_of
    assert BankTransaction.objects.filter(connection=bank_a).count() == 3


def test_a_line_without_matching_reference_is_skipped_by_day_amount_and_content(tmp_path, bank_a):
    # The provider wrote the note in its own way: diacritics, case, spacing differ.
    line = SAMPLE[2]
    webhook(bank_a, 7, Line(at(3, 10, 4), line.amount, "Trần Thị Bích  nộp tiền vệ sinh, an ninh"))

    report = statement_import(connection=bank_a, path=write_statement(tmp_path, "mb", SAMPLE))

    assert report.created == 2
    assert [d.row for d in report.duplicates] == [9]
    assert "cùng ngày, số tiền và nội dung" in report.duplicates[0].duplicate_of


def test_a_bank_prefixed_statement_note_matches_the_webhook_note_it_contains(tmp_path, bank_a):
    webhook(bank_a, 3, Line(at(2, 14), 300_000, "LE VAN C nop phi thang 5"))
    lines = [
        Line(at(2, 14), 300_000, "MBVCB.4525077405.027412.LE VAN C nop phi thang 5.CT tu 0351")
    ]

    report = statement_import(connection=bank_a, path=write_statement(tmp_path, "vcb", lines))

    assert report.created == 0 and len(report.duplicates) == 1


def test_two_identical_lines_against_one_existing_transfer_create_exactly_one(tmp_path, bank_a):
    same = Line(at(4, 9), 200_000, "NGUYEN VAN A phi ve sinh")
    webhook(bank_a, 11, same)
    lines = [same, Line(at(4, 16), 200_000, "NGUYEN VAN A phi ve sinh")]

    report = statement_import(connection=bank_a, path=write_statement(tmp_path, "vcb", lines))

    assert report.created == 1 and len(report.duplicates) == 1
    assert BankTransaction.objects.filter(connection=bank_a, amount_vnd=200_000).count() == 2


def test_two_genuine_identical_transfers_on_one_day_both_survive(tmp_path, bank_a):
    lines = [Line(at(4, 9), 200_000, "phi ve sinh"), Line(at(4, 9), 200_000, "phi ve sinh")]

    report = statement_import(connection=bank_a, path=write_statement(tmp_path, "vcb", lines))

    assert report.created == 2
    ids = {t.provider_transaction_id for t in imported(bank_a)}
    assert len(ids) == 2


def test_re_importing_the_same_file_creates_nothing(tmp_path, bank_a):
    lines = [
        *SAMPLE,
        Line(at(4, 9), 200_000, "phi ve sinh"),
        Line(at(4, 9), 200_000, "phi ve sinh"),
    ]
    path = write_statement(tmp_path, "bidv", lines)
    statement_import(connection=bank_a, path=path)

    again = statement_import(connection=bank_a, path=path)
    as_xlsx = statement_import(
        connection=bank_a, path=write_statement(tmp_path, "bidv", lines, fmt="xlsx")
    )

    assert again.created == 0 and len(again.duplicates) == 5
    assert as_xlsx.created == 0
    assert BankTransaction.objects.filter(connection=bank_a).count() == 5


def test_an_overlapping_statement_adds_only_the_new_days(tmp_path, bank_a):
    statement_import(connection=bank_a, path=write_statement(tmp_path, "vcb", SAMPLE[:2]))
    later = [*SAMPLE, Line(at(5, 8), 90_000, "phi dien thang 5")]

    report = statement_import(
        connection=bank_a, path=write_statement(tmp_path, "techcombank", later)
    )

    assert report.created == 2 and len(report.duplicates) == 2
    assert [t.amount_vnd for t in imported(bank_a)] == [500_000, 11_000, 1_250_000, 90_000]


def test_imported_ids_are_deterministic_per_line(tmp_path, bank_a, market_b):
    path = write_statement(tmp_path, "vcb", SAMPLE)
    first = statement_import(connection=bank_a, path=path, dry_run=True)
    second = statement_import(connection=bank_a, path=path, dry_run=True)

    assert [x.provider_transaction_id for x in first.to_create] == [
        x.provider_transaction_id for x in second.to_create
    ]
    assert len({x.provider_transaction_id for x in first.to_create}) == 3
