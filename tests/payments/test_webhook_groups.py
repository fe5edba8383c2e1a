"""Deliveries stored together (one group commit), the per-process connection cache,
and the processing of a group's events."""

from __future__ import annotations

import dataclasses

import pytest
from django.db import connection as db
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from market40.models import FeeDemand
from payments import services
from payments.models import BankConnection, BankTransaction, WebhookEvent
from payments.providers import PROVIDERS
from tests.payments.helpers import build, connect, make_transfer, post

DATABASE_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def authentic(connection, transfers) -> services._Authentic:
    """A verified delivery of ``transfers`` as the endpoint hands it to the writer."""
    body, _headers = build(connection, transfers)
    event = WebhookEvent(connection=connection, body=body, headers={}, http_status=200)
    parsed = PROVIDERS[connection.provider].parse(body)
    event.transfer_count = len(parsed)
    return services._Authentic(connection, event, parsed)


@pytest.mark.parametrize("fits", [True, False], ids=["one-statement", "too-large-for-one"])
def test_a_group_stores_each_delivery_with_its_own_outcome_in_one_commit(
    billed_a, market_a, monkeypatch, fits
):
    from payments import groupwrite

    # A group too large for one statement (batches of thousands of transfers) is
    # written by the statement-per-table path, as on SQLite.
    monkeypatch.setattr(groupwrite, "fits", lambda events, transactions: fits)
    connection = connect(market_a, "sepay", mode="hmac")
    demand = FeeDemand.objects.order_by("pk").first()
    old = make_transfer(connection, 1, amount_vnd=demand.total_vnd, content=demand.payment_code)
    services._write_authentic([authentic(connection, [old])])
    new = make_transfer(connection, 2)
    group = [
        authentic(connection, [new]),
        authentic(connection, [old]),  # stored by an earlier group: a redelivery
        authentic(connection, [new]),  # the same transfer twice in one group
        authentic(connection, [make_transfer(connection, 3)]),
    ]

    with CaptureQueriesContext(db) as queries:
        services._write_authentic(group)

    events = [delivery.event for delivery in group]
    stored = {e.pk: e for e in WebhookEvent.objects.filter(pk__in=[e.pk for e in events])}
    assert [(stored[e.pk].outcome, stored[e.pk].new_transactions) for e in events] == [
        ("accepted", 1),
        ("duplicate", 0),
        ("duplicate", 0),
        ("accepted", 1),
    ]
    assert [len(delivery.created) for delivery in group] == [1, 0, 0, 1]
    tx = BankTransaction.objects.get(provider_transaction_id="2")
    assert tx.event_id == events[0].pk  # the first delivery in the group carried it
    assert BankTransaction.objects.count() == 3
    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    if db.vendor == "postgresql" and fits:
        # Events, transactions and counts in one statement (payments/groupwrite.py);
        # inside the test's transaction, a savepoint around it.
        assert statements == ["SAVEPOINT", "WITH", "RELEASE"]
    elif db.vendor == "postgresql":
        # Events in one INSERT, transactions in one, the redeliveries' counts in one
        # UPDATE: not a statement per delivery.
        assert statements.count("INSERT") == 2 and statements.count("UPDATE") == 1


@pytest.mark.parametrize("fits", [True, False], ids=["one-statement", "too-large-for-one"])
def test_a_group_of_batches_an_empty_batch_and_a_test_call_gets_each_outcome(
    market_a, monkeypatch, fits
):
    """Casso v1 batches several transfers in one delivery, or none; its test call is a
    transfer with id 0. In one group: each delivery's own count of new transactions."""
    from payments import groupwrite

    monkeypatch.setattr(groupwrite, "fits", lambda events, transactions: fits)
    connection = connect(market_a, "casso", version="v1")
    services._write_authentic([authentic(connection, [make_transfer(connection, 1)])])
    test_call = dataclasses.replace(make_transfer(connection, 0), is_test=True)
    group = [
        authentic(connection, [make_transfer(connection, n) for n in (2, 1, 3)]),
        services._Authentic(  # what Casso's parser makes of {"error": 0, "data": []}
            connection,
            WebhookEvent(connection=connection, body=b'{"error":0,"data":[]}', http_status=200),
            PROVIDERS["casso"].parse(b'{"error":0,"data":[]}'),
        ),
        authentic(connection, [test_call]),
        authentic(connection, [make_transfer(connection, 3), make_transfer(connection, 4)]),
    ]

    services._write_authentic(group)

    stored = WebhookEvent.objects.in_bulk([delivery.event.pk for delivery in group])
    assert [(stored[d.event.pk].outcome, stored[d.event.pk].new_transactions) for d in group] == [
        ("accepted", 2),
        ("accepted", 0),
        ("test", 1),
        ("accepted", 1),
    ]
    assert [len(d.created) for d in group] == [2, 0, 1, 1]
    carried = dict(BankTransaction.objects.values_list("provider_transaction_id", "event_id"))
    assert carried == {
        "1": carried["1"],  # the earlier group's
        "2": group[0].event.pk,
        "3": group[0].event.pk,  # the first of the group to carry it
        "0": group[2].event.pk,
        "4": group[3].event.pk,
    }
    assert {tx.pk for d in group for tx in d.created} == set(
        BankTransaction.objects.exclude(provider_transaction_id="1").values_list("pk", flat=True)
    )


@override_settings(TASKS=DATABASE_TASKS)
def test_on_the_database_queue_a_group_queues_one_task_for_its_new_deliveries(market_a):
    from django_tasks_db.models import DBTaskResult

    from payments.tasks import process_events

    connection = connect(market_a, "sepay", mode="hmac")
    services._write_authentic([authentic(connection, [make_transfer(connection, 1)])])
    DBTaskResult.objects.all().delete()
    group = [
        authentic(connection, [make_transfer(connection, 2)]),
        authentic(connection, [make_transfer(connection, 1)]),  # a redelivery
        authentic(connection, [make_transfer(connection, 3)]),
    ]

    services._write_authentic(group)

    (task,) = DBTaskResult.objects.all()
    assert task.task_path == "payments.tasks.process_events"
    assert task.args_kwargs == {"args": [[group[0].event.pk, group[2].event.pk]], "kwargs": {}}
    # The row is the one the backend's own enqueue writes: its worker takes it as such.
    result = process_events.get_backend().get_result(str(task.pk))
    assert (result.status, result.args, result.kwargs) == ("READY", task.args_kwargs["args"], {})
    assert result.task.run_after is None and result.task.queue_name == "default"
    assert DBTaskResult.objects.ready().get() == task


def test_processing_a_group_goes_on_past_a_failing_event_and_fails_after(
    billed_a, market_a, monkeypatch
):
    connection = connect(market_a, "sepay", mode="hmac")
    demands = list(FeeDemand.objects.order_by("pk")[:3])
    group = [
        authentic(
            connection,
            [make_transfer(connection, n, amount_vnd=d.total_vnd, content=d.payment_code)],
        )
        for n, d in enumerate(demands, 1)
    ]
    services._write_authentic(group)
    ids = [delivery.event.pk for delivery in group]
    real = services.event_process

    def second_fails(event_id):
        if event_id == ids[1]:
            WebhookEvent.objects.filter(pk=event_id).update(processing_error="hỏng")
            raise RuntimeError("hỏng")
        return real(event_id)

    monkeypatch.setattr(services, "event_process", second_fails)
    with pytest.raises(RuntimeError, match=str(ids[1])):
        services.events_process(ids)

    paid = FeeDemand.objects.filter(status=FeeDemand.Status.PAID).values_list("pk", flat=True)
    assert set(paid) == {demands[0].pk, demands[2].pk}
    assert WebhookEvent.objects.get(pk=ids[1]).processing_error == "hỏng"


def test_a_secret_rotated_by_another_process_is_picked_up_at_the_first_rejection(market_a):
    client = Client()
    connection = connect(market_a, "simulator")
    body, headers = build(connection, [make_transfer(connection, 1)])
    assert post(client, connection, body, headers).status_code == 200  # now cached here

    # Another process rotates the secret: no signal reaches this one.
    rotated = BankConnection(pk=connection.pk)
    rotated.set_secret("whsec_rotated_elsewhere")
    BankConnection.objects.filter(pk=connection.pk).update(
        secret_encrypted=rotated.secret_encrypted
    )
    fresh = BankConnection.objects.get(pk=connection.pk)
    body, headers = build(fresh, [make_transfer(fresh, 2)])

    assert post(client, connection, body, headers).status_code == 200
    assert WebhookEvent.objects.order_by("-pk").first().outcome == "accepted"
    assert WebhookEvent.objects.filter(outcome="rejected").count() == 0


def test_a_connection_switched_off_here_is_refused_at_once_elsewhere_within_seconds(
    market_a, monkeypatch
):
    client = Client()
    connection = connect(market_a, "simulator")
    transfers = iter(range(1, 10))

    def deliver():
        body, headers = build(connection, [make_transfer(connection, next(transfers))])
        return post(client, connection, body, headers).status_code

    assert deliver() == 200
    connection.active = False
    connection.save()  # in this process: the cached row is dropped
    assert deliver() == 404

    connection.active = True
    connection.save()
    assert deliver() == 200
    # Switched off by another process (no signal here): refused once the cached row
    # is older than CONNECTION_CACHE_SECONDS.
    BankConnection.objects.filter(pk=connection.pk).update(active=False)
    assert deliver() == 200
    monkeypatch.setattr(services, "CONNECTION_CACHE_SECONDS", 0.0)
    assert deliver() == 404
