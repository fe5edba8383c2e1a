"""Eight concurrent issuers on PostgreSQL (spec §5.3): numbers 1..N with no gap and no
duplicate, each demand invoiced once. Threads, each with its own database connection.

These need real row locks across connections, so they run on PostgreSQL only (the PostgreSQL
pass of CI); on SQLite they are skipped with the reason shown.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import date

import pytest
from django.db import connection

from invoicing import services, testing
from invoicing.models import Invoice, InvoiceSerial
from market40.models import FeeDemand
from tests import factories

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ISSUERS = 8
DEMANDS = 48


@pytest.fixture(autouse=True)
def needs_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip(
            f"needs PostgreSQL (row locks across connections); this run uses {connection.vendor}. "
            "Run with DATABASE_URL=postgres://…"
        )


@pytest.fixture
def paid(market_a, tariffs_a, tmp_path):
    from market40.services import billing_run_create

    for number in range(1, DEMANDS + 1):
        factories.make_lease(factories.make_stall(market_a, f"C{number:03d}"))
    run = billing_run_create(market=market_a, period=date(2026, 5, 1)).run
    demands = list(run.demands.order_by("stall__code"))
    testing.mark_paid(demands)
    testing.configure_market(market_a, tmp_path / "certs")
    return demands


def run_concurrently(work: Callable[[int], None]) -> list[BaseException]:
    """Run ``work(i)`` for i in 0..ISSUERS-1 in threads released together; their errors."""
    barrier = threading.Barrier(ISSUERS)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as error:  # reported by the test
            errors.append(error)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(ISSUERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "an issuer is stuck"
    return errors


def assert_gapless(count: int) -> None:
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    assert numbers == list(range(1, count + 1))
    assert InvoiceSerial.objects.get().next_number == count + 1
    assert Invoice.objects.values("demand").distinct().count() == count


def test_eight_concurrent_issuers_take_numbers_without_gap_or_duplicate(paid, tmp_path):
    ids = [demand.pk for demand in paid]

    def issue_my_share(index: int) -> None:
        for demand_id in ids[index::ISSUERS]:
            services.invoice_issue_for_demand(demand=demand_id)

    errors = run_concurrently(issue_my_share)

    assert errors == []
    assert_gapless(DEMANDS)
    assert testing.check_stored_invoices(tmp_path / "xmlsec1") == DEMANDS


def test_eight_issuers_racing_for_the_same_demands_invoice_each_once(paid, tmp_path):
    ids = [demand.pk for demand in paid]

    def issue_all_in_my_order(index: int) -> None:
        order = ids[:]
        random.Random(index).shuffle(order)
        for demand_id in order:
            services.invoice_issue_for_demand(demand=demand_id)

    errors = run_concurrently(issue_all_in_my_order)

    assert errors == []
    assert_gapless(DEMANDS)
    for demand in FeeDemand.objects.filter(pk__in=ids):
        assert demand.invoices.count() == 1


def test_eight_concurrent_period_runs_issue_every_demand_once(paid, market_a, tmp_path):
    def run_period(index: int) -> None:
        services.invoices_issue_for_period(
            market=market_a, period=date(2026, 5, 1), batch_size=5 + index
        )

    errors = run_concurrently(run_period)

    assert errors == []
    assert_gapless(DEMANDS)
    assert testing.check_stored_invoices(tmp_path / "xmlsec1") == DEMANDS
