"""Store first, then trust: every delivery that reaches a connection is kept verbatim,
and a failure while processing it never loses it (STYLE.md habit 4, webhooks.md §2)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from market40.models import FeeDemand
from payments import reconciliation
from payments.models import Allocation, BankTransaction, WebhookEvent
from payments.providers import simulator
from tests.payments.helpers import (
    CREDENTIAL_HEADERS,
    REMOTE_ADDR,
    assert_ledger_consistent,
    build,
    connect,
    deliver,
    header,
    last_event,
    make_transfer,
    post,
)

CONNECTIONS = [
    pytest.param("sepay", {"mode": "hmac"}, id="sepay-hmac"),
    pytest.param("sepay", {"mode": "apikey"}, id="sepay-apikey"),
    pytest.param("casso", {"version": "v2"}, id="casso-v2"),
    pytest.param("casso", {"version": "v1"}, id="casso-v1"),
    pytest.param("payos", {}, id="payos"),
    pytest.param("simulator", {}, id="simulator"),
]


@pytest.mark.parametrize("wrong_key", [False, True], ids=["accepted", "rejected"])
@pytest.mark.parametrize(("provider", "options"), CONNECTIONS)
def test_the_stored_event_keeps_the_delivery_verbatim(
    client, market_a, provider, options, wrong_key
):
    connection = connect(market_a, provider, **options)
    transfer = make_transfer(connection, 4, content="Nguyễn Thị Lan đóng phí SAP A12 “T05”")
    body, headers = build(connection, [transfer], wrong_key=wrong_key)
    before = timezone.now()

    response = post(client, connection, body, {**headers, "Cookie": "sessionid=not-kept"})

    after = timezone.now()
    assert response.status_code == (401 if wrong_key else 200)
    event = WebhookEvent.objects.get()
    assert event.connection == connection
    assert bytes(event.body) == body
    assert event.remote_addr == REMOTE_ADDR
    assert before <= event.received_at <= after
    for name, value in headers.items():
        if name.lower() not in CREDENTIAL_HEADERS:
            assert header(event, name) == value, name
    assert header(event, "Cookie") is None
    assert event.outcome == ("rejected" if wrong_key else "accepted")
    assert event.http_status == response.status_code
    assert BankTransaction.objects.count() == (0 if wrong_key else 1)


def test_a_malformed_delivery_is_kept_byte_for_byte(client, market_a):
    connection = connect(market_a, "simulator")
    raw = b'{"version":1,"transfers":[{"amount_vnd":\xff\xfe 173000'
    headers = simulator.sign(raw, connection.secret, now=timezone.now())

    response = post(client, connection, raw, headers)

    assert response.status_code == 400
    event = last_event()
    assert bytes(event.body) == raw
    assert event.outcome == WebhookEvent.Outcome.MALFORMED


def deliver_payment(client, connection, demand, number: int = 1):
    """A real signed delivery paying ``demand`` in full."""
    transfer = make_transfer(
        connection, number, amount_vnd=demand.total_vnd, content=f"{demand.payment_code} T05"
    )
    return deliver(client, connection, [transfer])


def _broken_reconcile(transaction_id: int):
    raise RuntimeError("đối soát hỏng (mô phỏng lỗi)")


def test_a_processing_failure_is_answered_200_and_kept_on_the_event(
    client, billed_a, market_a, monkeypatch
):
    connection = connect(market_a, "simulator")
    demand = FeeDemand.objects.order_by("pk").first()
    monkeypatch.setattr(reconciliation, "reconcile", _broken_reconcile)

    response = deliver_payment(client, connection, demand)

    assert response.status_code == 200
    event = last_event()
    assert event.outcome == WebhookEvent.Outcome.ACCEPTED
    assert "RuntimeError" in event.processing_error
    assert "đối soát hỏng" in event.processing_error
    assert event.processed_at is None
    assert event.attempts == 1
    tx = BankTransaction.objects.get()
    assert (tx.status, tx.reconciled_at) == (BankTransaction.Status.UNMATCHED, None)
    assert Allocation.objects.count() == 0
    demand.refresh_from_db()
    assert demand.status == FeeDemand.Status.OPEN


def test_reprocess_failed_reconciles_a_failed_event_once(client, billed_a, market_a, monkeypatch):
    connection = connect(market_a, "simulator")
    demand = FeeDemand.objects.order_by("pk").first()
    monkeypatch.setattr(reconciliation, "reconcile", _broken_reconcile)
    deliver_payment(client, connection, demand)
    monkeypatch.undo()
    event = last_event()

    out = StringIO()
    call_command("reprocess_webhooks", "--failed", stdout=out, stderr=StringIO())

    assert "1 giao dịch được đối soát" in out.getvalue()
    event.refresh_from_db()
    assert event.processing_error == ""
    assert event.processed_at is not None
    tx = BankTransaction.objects.get()
    assert tx.status == BankTransaction.Status.MATCHED
    demand.refresh_from_db()
    assert (demand.status, demand.paid_vnd) == (FeeDemand.Status.PAID, demand.total_vnd)
    allocations = Allocation.objects.count()
    assert allocations == 1

    # Idempotent: running it again, with either selection, changes nothing.
    call_command("reprocess_webhooks", "--failed", stdout=StringIO(), stderr=StringIO())
    call_command("reprocess_webhooks", "--ids", str(event.pk), stdout=StringIO(), stderr=StringIO())
    call_command("reprocess_webhooks", "--ids", str(event.pk), stdout=StringIO(), stderr=StringIO())

    assert Allocation.objects.count() == allocations
    assert BankTransaction.objects.count() == 1
    demand.refresh_from_db()
    assert demand.paid_vnd == demand.total_vnd
    assert_ledger_consistent()


def test_a_replay_that_fails_again_keeps_the_error_and_exits_non_zero(
    client, billed_a, market_a, monkeypatch
):
    connection = connect(market_a, "simulator")
    demand = FeeDemand.objects.order_by("pk").first()
    monkeypatch.setattr(reconciliation, "reconcile", _broken_reconcile)
    deliver_payment(client, connection, demand)

    err = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("reprocess_webhooks", "--failed", stdout=StringIO(), stderr=err)

    assert exit_info.value.code == 1
    assert "RuntimeError" in err.getvalue()
    event = last_event()
    assert "RuntimeError" in event.processing_error
    assert event.attempts == 2
    assert BankTransaction.objects.count() == 1


def test_a_failure_halfway_through_a_batch_is_finished_by_the_replay_without_doubles(
    client, billed_a, market_a, monkeypatch
):
    connection = connect(market_a, "casso", version="v1")
    demands = list(FeeDemand.objects.order_by("pk"))
    transfers = [
        make_transfer(connection, n, amount_vnd=d.total_vnd, content=d.payment_code)
        for n, d in enumerate(demands, 1)
    ]

    # A batch is matched in one database transaction (reconcile_many): a failure in it
    # leaves the whole batch unreconciled, never half of it.
    def fails(transaction_ids, **kwargs):
        raise RuntimeError("lỗi giữa chừng")

    monkeypatch.setattr(reconciliation, "reconcile_many", fails)

    assert deliver(client, connection, transfers).status_code == 200
    assert BankTransaction.objects.count() == 3
    assert BankTransaction.objects.filter(reconciled_at__isnull=False).count() == 0
    monkeypatch.undo()

    call_command("reprocess_webhooks", "--failed", stdout=StringIO(), stderr=StringIO())

    assert BankTransaction.objects.filter(status="matched").count() == 3
    assert Allocation.objects.count() == 3
    assert set(FeeDemand.objects.values_list("status", flat=True)) == {FeeDemand.Status.PAID}
    assert_ledger_consistent()


def test_a_redelivery_of_a_failed_transfer_is_a_duplicate_and_the_replay_still_settles_it(
    client, billed_a, market_a, monkeypatch
):
    connection = connect(market_a, "sepay", mode="hmac")
    demand = FeeDemand.objects.order_by("pk").first()
    monkeypatch.setattr(reconciliation, "reconcile", _broken_reconcile)
    deliver_payment(client, connection, demand)
    monkeypatch.undo()

    again = deliver_payment(client, connection, demand)
    assert again.status_code == 200
    assert last_event().outcome == WebhookEvent.Outcome.DUPLICATE
    call_command("reprocess_webhooks", stdout=StringIO(), stderr=StringIO())

    demand.refresh_from_db()
    assert demand.status == FeeDemand.Status.PAID
    assert Allocation.objects.count() == 1
    assert_ledger_consistent()


def test_our_own_failure_while_verifying_is_answered_500_and_written_on_the_event(
    market_a, settings
):
    connection = connect(market_a, "simulator")
    body, headers = build(connection, [make_transfer(connection, 1)])
    settings.CONNECTION_SECRETS_KEY = "a-rotated-key-the-stored-secret-was-not-made-with"
    client = Client(raise_request_exception=False)

    response = post(client, connection, body, headers)

    assert response.status_code == 500
    event = WebhookEvent.objects.get()  # stored first, whatever happened next
    assert bytes(event.body) == body
    assert event.http_status == 500
    assert "InvalidToken" in event.processing_error


def batch_paying_two_demands(market):
    """A Casso v1 batch of two transfers, each paying one demand of ``market`` in full."""
    connection = connect(market, "casso", version="v1")
    demands = list(FeeDemand.objects.order_by("pk"))[:2]
    transfers = [
        make_transfer(connection, n, amount_vnd=d.total_vnd, content=d.payment_code)
        for n, d in enumerate(demands, 1)
    ]
    return (connection, demands, *build(connection, transfers))


def assert_paid(demands) -> None:
    statuses = FeeDemand.objects.filter(pk__in=[d.pk for d in demands]).values_list(
        "status", flat=True
    )
    assert set(statuses) == {FeeDemand.Status.PAID}


def test_a_failure_while_storing_the_transfers_keeps_the_delivery_and_nothing_half_stored(
    billed_a, market_a, monkeypatch
):
    from payments import services

    connection, demands, body, headers = batch_paying_two_demands(market_a)
    real_row = services.new_transaction
    made = []

    def second_row_out_of_range(*args, **kwargs):
        # The database refuses the second transfer's row (an amount beyond bigint),
        # after the first one was written (SQLite: one INSERT each) or in the same
        # statement (PostgreSQL: one statement for the group).
        row = real_row(*args, **kwargs)
        made.append(row)
        if len(made) == 2:
            row.amount_vnd = 2**63
        return row

    monkeypatch.setattr(services, "new_transaction", second_row_out_of_range)
    client = Client(raise_request_exception=False)

    response = post(client, connection, body, headers)

    assert response.status_code == 500  # the provider delivers it again
    event = WebhookEvent.objects.get()
    assert bytes(event.body) == body
    assert event.http_status == 500
    assert "range" in event.processing_error or "too large" in event.processing_error
    assert BankTransaction.objects.count() == 0  # the first transfer went back too

    monkeypatch.undo()
    again = post(client, connection, body, headers)

    assert again.status_code == 200
    assert WebhookEvent.objects.count() == 2
    assert last_event().outcome == WebhookEvent.Outcome.ACCEPTED
    assert last_event().new_transactions == 2
    assert BankTransaction.objects.count() == 2
    assert_paid(demands)


def test_a_verified_delivery_our_error_kept_from_being_stored_is_finished_by_the_replay(
    billed_a, market_a, monkeypatch
):
    from payments import services

    connection, demands, body, headers = batch_paying_two_demands(market_a)

    def fails(*args, **kwargs):
        raise RuntimeError("lỗi của chúng tôi")

    monkeypatch.setattr(services, "new_transaction", fails)
    client = Client(raise_request_exception=False)
    assert post(client, connection, body, headers).status_code == 500
    monkeypatch.undo()
    failed = last_event()
    assert failed.outcome == WebhookEvent.Outcome.RECEIVED and failed.verify_scheme

    out = StringIO()
    call_command("reprocess_webhooks", "--failed", stdout=out, stderr=StringIO())

    event = WebhookEvent.objects.get()
    assert (event.outcome, event.transfer_count, event.new_transactions) == (
        WebhookEvent.Outcome.ACCEPTED,
        2,
        2,
    )
    assert event.processing_error == "" and event.processed_at is not None
    assert "2 giao dịch được đối soát" in out.getvalue()
    assert_paid(demands)
    # Replaying again, or the provider's own retry, changes nothing.
    call_command("reprocess_webhooks", "--ids", str(event.pk), stdout=StringIO())
    assert post(client, connection, body, headers).status_code == 200
    assert last_event().outcome == WebhookEvent.Outcome.DUPLICATE
    assert BankTransaction.objects.count() == 2
    assert Allocation.objects.count() == 2
    assert_ledger_consistent()


def test_a_delivery_that_failed_before_it_was_verified_is_not_replayed(market_a, settings):
    connection = connect(market_a, "simulator")
    body, headers = build(connection, [make_transfer(connection, 1)])
    key = settings.CONNECTION_SECRETS_KEY
    settings.CONNECTION_SECRETS_KEY = "a-rotated-key-the-stored-secret-was-not-made-with"
    assert post(Client(raise_request_exception=False), connection, body, headers).status_code == 500
    settings.CONNECTION_SECRETS_KEY = key  # the secret can be read again: still not trusted

    call_command("reprocess_webhooks", "--failed", stdout=StringIO(), stderr=StringIO())

    assert last_event().outcome == WebhookEvent.Outcome.RECEIVED
    assert BankTransaction.objects.count() == 0
