"""Concurrent deliveries on PostgreSQL: 20 copies of one transfer arriving at the same
instant plus 200 distinct transfers, from 24 threads with their own database
connections, through the real endpoint → exactly 201 transactions, none lost, none
doubled, and every demand paid exactly once.

SQLite serialises writers, so the race only exists on PostgreSQL; the test is skipped,
visibly, elsewhere.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest
from django.db import connection as default_connection
from django.db import connections
from django.db.models import Sum
from django.test import Client
from django.utils import timezone

from market40.models import FeeDemand
from market40.services import billing_run_create
from payments.models import Allocation, BankTransaction, WebhookEvent
from payments.providers import sepay
from payments.providers.base import VN_TZ, Transfer
from payments.services import connection_create
from tests import factories

MAY = date(2026, 5, 1)
SAME_COPIES = 20
DISTINCT = 200
THREADS = 24

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def needs_postgresql():
    if default_connection.vendor != "postgresql":
        pytest.skip(
            f"needs PostgreSQL (the database is {default_connection.vendor}); "
            "run with DATABASE_URL=postgres://… as in the PostgreSQL pass of .ci/run"
        )


def transfer(number: int, amount: int, content: str) -> Transfer:
    return Transfer(
        provider_transaction_id=str(number),
        direction="in",
        amount_vnd=amount,
        content=content,
        bank_reference=f"FT{number:014d}",
        account_number="0071000123456",
        bank_time=timezone.now().astimezone(VN_TZ).replace(microsecond=0),
    )


def test_twenty_simultaneous_copies_and_two_hundred_distinct_transfers_make_201_transactions(
    market_a, tariffs_a
):
    for i in range(50):
        factories.make_lease(factories.make_stall(market_a, f"C{i:03d}"))
    billing_run_create(market=market_a, period=MAY)
    demands = list(FeeDemand.objects.filter(market=market_a).order_by("id"))
    assert len(demands) == 50
    connection, secret, _generated = connection_create(
        market=market_a, provider="sepay", options={"mode": "hmac"}
    )
    path = connection.webhook_path

    # The same transfer pays demand 0; 4 transfers of a quarter each pay demands 1..49;
    # 4 more carry no code at all.
    same = transfer(1000, demands[0].total_vnd, f"{demands[0].payment_code} CK")
    distinct: list[Transfer] = []
    number = 2000
    for demand in demands[1:]:
        quarter = demand.total_vnd // 4
        for part in range(4):
            amount = quarter if part < 3 else demand.total_vnd - 3 * quarter
            distinct.append(transfer(number, amount, f"{demand.payment_code} lan {part + 1}"))
            number += 1
    for _ in range(DISTINCT - len(distinct)):
        distinct.append(transfer(number, 50_000, "chuyen tien"))
        number += 1
    assert len(distinct) == DISTINCT

    now = timezone.now()
    same_delivery = sepay.build_delivery([same], secret, now=now)
    distinct_deliveries = [sepay.build_delivery([t], secret, now=now) for t in distinct]
    barrier = threading.Barrier(SAME_COPIES)

    def post(body: bytes, headers: dict[str, str], *, together: bool = False) -> int:
        try:
            client = Client()
            extra = {k: v for k, v in headers.items() if k != "Content-Type"}
            if together:
                barrier.wait(timeout=30)
            response = client.post(path, data=body, content_type="application/json", headers=extra)
            return response.status_code
        finally:
            # Each worker thread has its own database connection; close it here.
            connections.close_all()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = [pool.submit(post, *same_delivery, together=True) for _ in range(SAME_COPIES)]
        futures += [pool.submit(post, body, headers) for body, headers in distinct_deliveries]
        statuses = [f.result(timeout=120) for f in futures]

    assert statuses == [200] * (SAME_COPIES + DISTINCT)
    assert BankTransaction.objects.filter(connection=connection).count() == DISTINCT + 1
    events = WebhookEvent.objects.filter(connection=connection)
    assert events.count() == SAME_COPIES + DISTINCT
    assert events.filter(outcome="accepted").count() == DISTINCT + 1
    assert events.filter(outcome="duplicate").count() == SAME_COPIES - 1
    assert events.aggregate(s=Sum("new_transactions"))["s"] == DISTINCT + 1
    assert not events.exclude(processing_error="").exists()

    # Every demand was paid exactly once, whatever the interleaving.
    for demand in FeeDemand.objects.filter(market=market_a):
        allocated = Allocation.objects.filter(demand=demand).aggregate(s=Sum("amount_vnd"))["s"]
        assert demand.paid_vnd == allocated == demand.total_vnd, demand.payment_code
        assert demand.status == FeeDemand.Status.PAID
    assert Allocation.objects.filter(demand=demands[0]).count() == 1
    for tx in BankTransaction.objects.filter(connection=connection):
        assert tx.reconciled_at is not None
        assert tx.allocated_vnd + tx.credit_vnd + tx.unmatched_vnd == tx.amount_vnd
    assert BankTransaction.objects.filter(status="unmatched").count() == DISTINCT - 49 * 4
