"""The one-statement bulk helpers behave like the ORM they replace, on both databases."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from market40.bulk import insert_objects, insert_or_skip_objects, update_rows
from market40.models import FeeDemand
from payments.models import BankTransaction, WebhookEvent
from payments.services import connection_create

KEY = ["connection", "provider_transaction_id"]


def _transfer(conn, provider_id: str, **kw) -> BankTransaction:
    fields = {
        "connection": conn,
        "provider_transaction_id": provider_id,
        "direction": "in",
        "amount_vnd": 150_000,
        "content": "CK tiền sạp",
        "bank_time": datetime(2026, 5, 3, 2, 15, tzinfo=UTC),
    } | kw
    return BankTransaction(**fields)


def test_insert_or_skip_objects_inserts_once_and_skips_the_same_key(market_a):
    conn, _secret, _ = connection_create(market=market_a, provider="simulator")
    first = _transfer(conn, "FT1", content="Nguyễn Văn A chuyển 'tiền' \"sạp\"")

    assert insert_or_skip_objects([first], KEY) == [first]
    again = _transfer(conn, "FT1", amount_vnd=999_000)
    assert insert_or_skip_objects([again], KEY) == []

    stored = BankTransaction.objects.get()
    assert stored.pk == first.pk and again.pk is None
    assert (stored.amount_vnd, stored.content) == (150_000, first.content)
    assert stored.bank_time == first.bank_time and stored.received_at is not None


def test_insert_or_skip_objects_of_one_row_is_one_statement(market_a):
    conn, _secret, _ = connection_create(market=market_a, provider="simulator")
    with CaptureQueriesContext(connection) as queries:
        insert_or_skip_objects([_transfer(conn, "FT2")], KEY)
    assert len(queries) == 1 and "ON CONFLICT" in queries[0]["sql"]


def test_update_rows_writes_each_objects_own_values_in_one_statement(billed_a):
    demands = list(FeeDemand.objects.order_by("pk"))
    assert len(demands) >= 3
    paid_at = datetime(2026, 5, 9, 3, 0, tzinfo=UTC)
    for n, demand in enumerate(demands):
        demand.paid_vnd = 1000 * (n + 1)
        demand.status = FeeDemand.Status.PARTIAL if n % 2 else FeeDemand.Status.OPEN
        demand.paid_at = paid_at if n == 0 else None
    untouched = {d.pk: d.total_vnd for d in demands}

    with CaptureQueriesContext(connection) as queries:
        update_rows(FeeDemand, ["paid_vnd", "status", "paid_at"], demands)
    # PostgreSQL: one UPDATE … FROM unnest(…); SQLite: one executemany of a prepared UPDATE.
    assert len(queries) == 1 and "UPDATE" in queries[0]["sql"]

    for n, stored in enumerate(FeeDemand.objects.order_by("pk")):
        assert stored.paid_vnd == 1000 * (n + 1)
        assert stored.status == (FeeDemand.Status.PARTIAL if n % 2 else FeeDemand.Status.OPEN)
        assert stored.paid_at == (paid_at if n == 0 else None)
        assert stored.total_vnd == untouched[stored.pk]


def test_update_rows_with_nothing_to_write_sends_nothing(db):
    with CaptureQueriesContext(connection) as queries:
        update_rows(FeeDemand, ["paid_vnd"], [])
    assert len(queries) == 0


def _event(conn, n: int, **kw) -> WebhookEvent:
    return WebhookEvent(connection=conn, headers={"n": n}, body=f"thân {n}".encode(), **kw)


@pytest.mark.parametrize("rows", [1, 2, 5])
def test_insert_objects_stores_each_objects_own_values_and_sets_its_key(market_a, rows):
    conn, _secret, _ = connection_create(market=market_a, provider="simulator")
    done = datetime(2026, 5, 3, 2, 15, tzinfo=UTC)
    events = [
        # Some columns differ between rows, some are the same in all (sent once), and
        # a time column that is empty in some rows or in all of them.
        _event(conn, n, http_status=200 + n, processed_at=done if n % 2 else None)
        for n in range(rows)
    ]

    with CaptureQueriesContext(connection) as queries:
        insert_objects(events)

    # PostgreSQL: one statement for all rows; SQLite: one each.
    assert len(queries) == (1 if connection.vendor == "postgresql" else rows)
    assert [e.pk for e in events] == sorted(e.pk for e in events)
    for n, event in enumerate(events):
        stored = WebhookEvent.objects.get(pk=event.pk)
        assert (stored.headers, bytes(stored.body)) == ({"n": n}, f"thân {n}".encode())
        assert stored.http_status == 200 + n and stored.connection_id == conn.pk
        assert stored.processed_at == (done if n % 2 else None)
        assert stored.received_at == event.received_at and stored.attempts == 0


def test_insert_or_skip_objects_stores_only_new_keys_and_the_first_of_a_repeated_one(market_a):
    conn, _secret, _ = connection_create(market=market_a, provider="simulator")
    assert insert_or_skip_objects([_transfer(conn, "FT-OLD")], KEY)
    batch = [
        _transfer(conn, "FT-A", amount_vnd=1_000),
        _transfer(conn, "FT-OLD", amount_vnd=2_000),  # stored before
        _transfer(conn, "FT-B", amount_vnd=3_000, running_balance_vnd=None),
        _transfer(conn, "FT-A", amount_vnd=4_000),  # repeats the first of the batch
        _transfer(conn, "FT-C", amount_vnd=5_000, running_balance_vnd=9_000),
    ]

    with CaptureQueriesContext(connection) as queries:
        inserted = insert_or_skip_objects(batch, KEY)

    assert len(queries) == (1 if connection.vendor == "postgresql" else len(batch))
    assert inserted == [batch[0], batch[2], batch[4]]
    assert batch[1].pk is None and batch[3].pk is None
    amounts = dict(BankTransaction.objects.values_list("provider_transaction_id", "amount_vnd"))
    assert amounts == {"FT-OLD": 150_000, "FT-A": 1_000, "FT-B": 3_000, "FT-C": 5_000}
    assert BankTransaction.objects.get(pk=batch[4].pk).running_balance_vnd == 9_000
    assert insert_or_skip_objects([], KEY) == []


def test_insert_or_skip_objects_refuses_a_key_it_could_not_match_back(market_a):
    conn, _secret, _ = connection_create(market=market_a, provider="simulator")
    with pytest.raises(ValueError, match="key column"):
        insert_or_skip_objects([_transfer(conn, "FT9")], ["connection", "bank_time"])
    assert BankTransaction.objects.count() == 0
