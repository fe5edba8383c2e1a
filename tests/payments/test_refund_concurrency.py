"""Two refunds of one holder's credit at the same instant never refund more than the
credit: the holder row is locked and the credit re-read under the lock."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from django.db import connection as default_connection
from django.db import connections

from market40.errors import InvalidInput
from market40.models import FeeDemand
from market40.services import billing_run_create
from payments import ledger
from payments.models import BankTransaction
from payments.reconciliation import reconcile
from payments.services import connection_create
from tests import factories

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def postgres_only():
    if default_connection.vendor != "postgresql":
        pytest.skip(
            f"row-lock race needs PostgreSQL; this run uses {default_connection.vendor} "
            "(set DATABASE_URL=postgres://… to run it)"
        )


def test_two_simultaneous_refunds_never_exceed_the_credit(
    postgres_only, market_a, tariffs_a, accountant_a
):
    holder = factories.make_holder(market_a, "Ngô Thị Mai")
    factories.make_lease(factories.make_stall(market_a, "R1"), holder)
    billing_run_create(market=market_a, period=date(2026, 5, 1))
    demand = FeeDemand.objects.get()
    connection = connection_create(market=market_a, provider="simulator")[0]
    tx = BankTransaction.objects.create(
        connection=connection,
        provider_transaction_id="T1",
        direction="in",
        amount_vnd=demand.total_vnd + 100_000,
        content=demand.payment_code,
        bank_time="2026-05-10T09:00:00+07:00",
    )
    reconcile(tx.pk)
    assert ledger.holder_credit_vnd(holder.pk) == 100_000

    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def refund(reference: str) -> None:
        try:
            connections["default"].ensure_connection()
            barrier.wait(timeout=10)
            ledger.refund_credit(
                holder=holder,
                amount_vnd=100_000,
                reference=reference,
                user=accountant_a,
                note="hoàn tiền thừa",
            )
            outcomes.append("refunded")
        except InvalidInput:
            outcomes.append("refused")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=refund, args=(f"FT{n}",)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["refunded", "refused"]
    assert ledger.holder_credit_vnd(holder.pk) == 0
    tx.refresh_from_db()
    assert tx.credit_vnd == 0 and tx.allocated_vnd == tx.amount_vnd
