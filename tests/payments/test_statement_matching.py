"""Imported lines go through the same matching as webhooks: a line whose note carries a
demand's payment code settles that demand; the rest wait in the unmatched queue."""

from __future__ import annotations

import pytest

from market40.models import FeeDemand
from payments.models import Allocation, BankTransaction
from payments.statements import statement_import
from tests.payments.helpers import assert_ledger_consistent
from tests.payments.test_statement_layouts import Line, at, statement_connection, write_statement


@pytest.fixture
def bank_a(market_a):
    return statement_connection(market_a)


def test_an_imported_line_with_a_payment_code_settles_the_demand(tmp_path, bank_a, billed_a):
    demand = FeeDemand.objects.order_by("stall__code").first()
    lines = [
        Line(at(6, 9), demand.total_vnd, f"NGUYEN VAN A chuyen tien {demand.payment_code} T5"),
        Line(at(6, 11), 120_000, "chuyen tien khong ghi ma"),
        Line(at(6, 12), -5_500, "Phi SMS Banking"),
    ]

    report = statement_import(connection=bank_a, path=write_statement(tmp_path, "mb", lines))

    demand.refresh_from_db()
    assert demand.status == FeeDemand.Status.PAID
    assert demand.paid_vnd == demand.total_vnd
    paid_by = BankTransaction.objects.get(amount_vnd=demand.total_vnd)
    assert paid_by.source == "statement" and paid_by.status == "matched"
    assert list(
        Allocation.objects.filter(demand=demand).values_list("transaction_id", flat=True)
    ) == [paid_by.pk]
    assert report.reconciled == {"matched": 1, "unmatched": 1, "ignored": 1}
    assert BankTransaction.objects.get(amount_vnd=120_000).status == "unmatched"
    assert_ledger_consistent()


def test_a_dry_run_matches_nothing(tmp_path, bank_a, billed_a):
    demand = FeeDemand.objects.first()
    lines = [Line(at(6, 9), demand.total_vnd, f"{demand.payment_code}")]

    statement_import(connection=bank_a, path=write_statement(tmp_path, "vcb", lines), dry_run=True)

    demand.refresh_from_db()
    assert demand.status == FeeDemand.Status.OPEN
    assert not Allocation.objects.exists()


def test_a_transfer_received_by_webhook_and_in_the_statement_pays_only_once(
    tmp_path, bank_a, billed_a
):
    from payments.providers.base import Transfer
    from payments.reconciliation import reconcile
    from payments.services import store_transfers

    demand = FeeDemand.objects.first()
    note = f"TRAN THI BICH {demand.payment_code} phi thang 5"
    (tx,) = store_transfers(
        connection=bank_a,
        event=None,
        transfers=[
            Transfer(
                provider_transaction_id="casso-77",
                direction="in",
                amount_vnd=demand.total_vnd,
                content=note,
                bank_time=at(6, 9, 30),
            )
        ],
    )
    reconcile(tx.pk)

    report = statement_import(
        connection=bank_a,
        path=write_statement(tmp_path, "vcb", [Line(at(6, 9), demand.total_vnd, note)]),
    )

    assert report.created == 0 and len(report.duplicates) == 1
    demand.refresh_from_db()
    assert demand.paid_vnd == demand.total_vnd
    assert Allocation.objects.filter(demand=demand).count() == 1
    assert_ledger_consistent()
