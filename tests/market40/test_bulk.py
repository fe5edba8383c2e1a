"""The one-statement bulk helpers behave like the ORM they replace, on both databases."""

from datetime import UTC, datetime

from django.db import connection
from django.test.utils import CaptureQueriesContext

from market40.bulk import insert_or_skip, update_rows
from market40.models import FeeDemand
from payments.models import BankTransaction
from payments.services import connection_create


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


def test_insert_or_skip_inserts_once_and_skips_the_same_key(market_a):
    conn, _secret, _ = connection_create(market=market_a, provider="simulator")
    first = _transfer(conn, "FT1", content="Nguyễn Văn A chuyển 'tiền' \"sạp\"")

    assert insert_or_skip(first, ["connection", "provider_transaction_id"]) is True
    again = _transfer(conn, "FT1", amount_vnd=999_000)
    assert insert_or_skip(again, ["connection", "provider_transaction_id"]) is False

    stored = BankTransaction.objects.get()
    assert stored.pk == first.pk and again.pk is None
    assert (stored.amount_vnd, stored.content) == (150_000, first.content)
    assert stored.bank_time == first.bank_time and stored.received_at is not None


def test_insert_or_skip_is_one_statement(market_a):
    conn, _secret, _ = connection_create(market=market_a, provider="simulator")
    with CaptureQueriesContext(connection) as queries:
        insert_or_skip(_transfer(conn, "FT2"), ["connection", "provider_transaction_id"])
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
