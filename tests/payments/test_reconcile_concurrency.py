"""Two transfers for the same demand, reconciled at the same instant on two database
connections (the holder paid through two banks), never over-allocate it: one pays what
is outstanding, the other takes only what is left, and the rest becomes the holder's
credit.

Needs real row locks, so PostgreSQL only (SQLite serialises writers on the whole file,
which would prove nothing). Each round starts both reconciliations together with a
``threading.Barrier``, after both threads have connected; the race is repeated so that
both orders occur. Without the lock on the demand this test fails (checked by
disabling ``select_for_update`` on ``FeeDemand``).
"""

from __future__ import annotations

import threading
from datetime import date

import pytest
from django.db import connection as default_connection
from django.db import connections
from django.db.models import Sum

from market40.models import FeeDemand
from market40.services import billing_run_create
from payments.models import Allocation, BankTransaction
from payments.reconciliation import reconcile
from payments.services import connection_create
from tests import factories

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROUNDS = 20
MAY = date(2026, 5, 1)


@pytest.fixture
def postgres_only():
    if default_connection.vendor != "postgresql":
        pytest.skip(
            f"row-lock race needs PostgreSQL; this run uses {default_connection.vendor} "
            "(set DATABASE_URL=postgres://… to run it)"
        )


@pytest.fixture
def demands(postgres_only, market_a, tariffs_a):
    for n in range(ROUNDS):
        factories.make_lease(factories.make_stall(market_a, f"C{n:03d}"))
    billing_run_create(market=market_a, period=MAY)
    # Two connections: ``reconcile`` locks the transaction together with its connection
    # row, so two transfers of one connection never run side by side; through two banks
    # they do, and only the lock on the demand keeps them apart.
    banks = [connection_create(market=market_a, provider=p)[0] for p in ("simulator", "sepay")]
    return banks, list(FeeDemand.objects.order_by("id"))


def reconcile_together(transaction_ids: list[int]) -> list[BaseException]:
    barrier = threading.Barrier(len(transaction_ids))
    errors: list[BaseException] = []

    def run(transaction_id: int) -> None:
        try:
            # Connect before the barrier, so that it releases two ready connections
            # rather than a connection still being opened.
            connections["default"].ensure_connection()
            barrier.wait(timeout=10)
            reconcile(transaction_id)
        except BaseException as error:  # reported to the test thread below
            errors.append(error)
        finally:
            connections.close_all()  # this thread's own connection

    threads = [threading.Thread(target=run, args=(pk,)) for pk in transaction_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a reconciliation never finished"
    return errors


def test_two_transfers_reconciled_at_once_never_over_allocate_a_demand(demands):
    banks, bills = demands
    for round_number, demand in enumerate(bills):
        # Each transfer alone is 70 % of the demand: together they pay 140 %.
        amount = demand.total_vnd * 7 // 10
        pair = [
            BankTransaction.objects.create(
                connection=bank,
                provider_transaction_id=f"RACE-{round_number}-{side}",
                direction="in",
                amount_vnd=amount,
                content=f"nop phi {demand.payment_code}",
                bank_time="2026-05-10T09:00:00+07:00",
            )
            # Most rounds through two banks; every fifth through one (serialised by the
            # connection row, and it must come out the same).
            for side, bank in enumerate(banks if round_number % 5 else banks[:1] * 2)
        ]

        errors = reconcile_together([tx.pk for tx in pair])

        assert errors == []
        demand.refresh_from_db()
        allocated = (
            Allocation.objects.filter(demand=demand).aggregate(s=Sum("amount_vnd"))["s"] or 0
        )
        assert allocated == demand.paid_vnd == demand.total_vnd, round_number
        assert demand.status == "paid"
        for tx in pair:
            tx.refresh_from_db()
            assert tx.reconciled_at is not None and tx.status == "matched"
            assert tx.allocated_vnd + tx.credit_vnd + tx.unmatched_vnd == tx.amount_vnd
            assert tx.unmatched_vnd == 0
        # Whichever came second took only what was left; the rest is the holder's.
        assert sorted(tx.allocated_vnd for tx in pair) == [
            demand.total_vnd - amount,
            amount,
        ]
        credit = Allocation.objects.filter(
            transaction__in=pair, kind=Allocation.Kind.CREDIT
        ).aggregate(s=Sum("amount_vnd"))["s"]
        assert credit == 2 * amount - demand.total_vnd
        assert {
            row.holder_id for row in Allocation.objects.filter(transaction__in=pair, kind="credit")
        } == {demand.holder_id}
