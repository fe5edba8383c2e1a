"""Ingestion of bank-transfer notifications: store first, then trust, then process.

``webhook_receive`` is what the HTTP endpoint calls. It verifies the raw bytes with the
connection's provider module and parses them — both only read — and then writes the
raw delivery (bytes, headers, address, time, verification outcome) as the first row of
the request: alone for a rejected, malformed or test delivery; for an authentic one in
the same single commit as its ``BankTransaction`` rows (unique per connection and
provider id: a redelivery creates nothing) and, on a database task queue, the
processing (reconciliation) task — a commit shared by the deliveries the process is
storing at the same moment (``payments/groupcommit.py``), each answered only once it is
committed. On PostgreSQL that group is one statement (``payments/groupwrite.py``); on
SQLite, and for a group too large for one statement, a few in one transaction. No state
exists in which a transaction is stored
without its delivery, and any error of ours before that commit stores the raw delivery
alone with the error and answers 5xx, so the provider sends it again; a process that
dies before the commit has answered nothing, with the same effect. A failure in
processing is written on the event and replayed by ``manage.py reprocess_webhooks``.
"""

from __future__ import annotations

import logging
import secrets
import time
import traceback
from dataclasses import dataclass, field, replace
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from market40.bulk import insert_objects, insert_one, insert_or_skip_objects, update_rows
from market40.errors import InvalidInput, NotFound
from market40.models import Market, ReceivingAccount
from market40.tasking import enqueues_in_transaction
from payments.groupcommit import GroupCommit
from payments.models import BankConnection, BankTransaction, Provider, WebhookEvent
from payments.providers import PROVIDERS, Transfer, WebhookRejected

log = logging.getLogger(__name__)

# Headers kept on the stored event: what a provider sends, never our own cookies; a
# header that *is* the shared secret (SePay API key, Casso v1 token) is kept only as a
# fingerprint, so the stored delivery never discloses the secret.
DROP_HEADERS = {"cookie", "x-csrftoken"}
REDACT_HEADERS = {"authorization", "secure-token"}


def _stored_headers(headers: dict[str, str]) -> dict[str, str]:
    import hashlib

    kept = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in DROP_HEADERS:
            continue
        if lower in REDACT_HEADERS:
            scheme = value.split(" ", 1)[0] if " " in value else ""
            digest = hashlib.sha256(value.encode()).hexdigest()[:8]
            value = f"{scheme} ***{digest}".strip()
        kept[name] = value
    return kept


@dataclass(frozen=True)
class Delivery:
    status: int
    body: dict[str, Any]
    event_id: int | None


def connection_create(
    *,
    market: Market,
    provider: str,
    account: ReceivingAccount | None = None,
    secret: str | None = None,
    options: dict | None = None,
) -> tuple[BankConnection, str, bool]:
    """A new connection; returns (connection, secret, whether the secret was generated)."""
    if provider not in Provider.values:
        raise InvalidInput(
            _("Nhà cung cấp “%(p)s” không được hỗ trợ; chọn một trong: %(all)s.")
            % {"p": provider, "all": ", ".join(Provider.values)},
            extra={"fields": {"provider": [provider]}},
        )
    account = account or market.default_account
    if account is None or account.market_id != market.pk:
        raise InvalidInput(_("Chợ chưa có tài khoản nhận tiền để gắn kết nối."))
    generated = not secret
    secret = secret or secrets.token_urlsafe(32)
    if len(secret) < 8:
        raise InvalidInput(
            _("Khóa bí mật phải dài ít nhất 8 ký tự."), extra={"fields": {"secret": ["min 8"]}}
        )
    connection = BankConnection(
        market=market, account=account, provider=provider, options=options or {}
    )
    connection.set_secret(secret)
    connection.save()
    return connection, secret, generated


def _verify_options(connection: BankConnection) -> dict[str, Any]:
    options = connection.options or {}
    if connection.provider == Provider.SEPAY and options.get("mode"):
        return {"mode": options["mode"]}
    if connection.provider == Provider.CASSO and options.get("version"):
        return {"version": options["version"]}
    return {}


_CONNECTION_FIELDS = ("id", "market_id", "account_id", "provider", "secret_encrypted", "options")

# Every delivery starts by looking up its connection. The rows change rarely (a secret
# rotated, a connection switched off), so each process keeps those it looked up for a
# few seconds: a saved or deleted connection is dropped at once in the process that
# saved it (``forget_connection``, on post_save/post_delete) and at most
# CONNECTION_CACHE_SECONDS later in the others; a delivery a cached secret rejects is
# checked once more against the stored row (a secret rotated in another process).
CONNECTION_CACHE_SECONDS = 5.0
_connections: dict[tuple[str, str], tuple[float, BankConnection]] = {}


def forget_connection(connection_id: str) -> None:
    for key in [key for key in _connections if key[1] == connection_id]:
        _connections.pop(key, None)


def _active_connection(
    provider: str, connection_id: str, *, cached: bool = True
) -> tuple[BankConnection | None, bool]:
    """The active connection, and whether it came from this process's cache."""
    key = (provider, connection_id)
    hit = _connections.get(key) if cached else None
    if hit is not None and time.monotonic() - hit[0] < CONNECTION_CACHE_SECONDS:
        return hit[1], True
    connection = _load_connection(provider, connection_id)
    if connection is None:
        _connections.pop(key, None)
    else:
        _connections[key] = (time.monotonic(), connection)
    return connection, False


def _load_connection(provider: str, connection_id: str) -> BankConnection | None:
    # One plain SELECT by primary key of the columns a delivery needs (the rest load on
    # access), without the ORM's query compilation.
    db = connections[DEFAULT_DB_ALIAS]
    options = BankConnection._meta.get_field("options")
    with db.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(_CONNECTION_FIELDS)} FROM {BankConnection._meta.db_table} "
            "WHERE id = %s AND provider = %s AND active",
            [connection_id, provider],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    values[-1] = options.from_db_value(values[-1], None, db)
    return BankConnection.from_db(db.alias, _CONNECTION_FIELDS, values)


def webhook_receive(
    *, provider: str, connection_id: str, body: bytes, headers: dict[str, str], remote_addr: str
) -> Delivery:
    for cached in (True, False):
        connection, from_cache = _active_connection(provider, connection_id, cached=cached)
        if connection is None:
            raise NotFound(_("Không có kết nối ngân hàng này."))
        event = WebhookEvent(
            connection=connection,
            remote_addr=remote_addr[:64],
            headers=_stored_headers(headers),
            body=body,
        )
        try:
            # Verification and parsing only read the bytes: nothing is written before
            # the event row below, which carries their outcome.
            checked = _check(connection, PROVIDERS[provider], event, body, headers)
        except Exception:
            _store_failed(event)
            raise
        if not (from_cache and isinstance(checked, Delivery) and checked.status == 401):
            break
    if isinstance(checked, Delivery):
        # Rejected, malformed or a provider's test call: the stored delivery is all.
        insert_one(event)
        return replace(checked, event_id=event.pk)
    return _store_authentic(connection, event, checked)


def _store_failed(event: WebhookEvent) -> None:
    """Our bug, not the sender's: the raw delivery is stored on its own, answered 5xx
    (the provider retries) and kept with the error so it can be replayed."""
    event.pk = None
    event.outcome = WebhookEvent.Outcome.RECEIVED
    event.http_status = 500
    event.processing_error = traceback.format_exc()[-4000:]
    insert_one(event)


def _check(connection, module, event, body, headers) -> Delivery | list[Transfer]:
    """Verify and parse the raw bytes; sets the event's verification fields. Returns
    the transfers of an authentic delivery, or the answer to anything else."""
    provider = connection.provider
    try:
        verified = module.verify(
            body, headers, connection.secret, now=timezone.now(), **_verify_options(connection)
        )
    except WebhookRejected as rejected:
        # payOS registers a webhook with an unsigned-or-not test call: answer 2xx so the
        # registration succeeds, record it, process nothing (webhooks.md §6.3).
        if provider == Provider.PAYOS and module.looks_like_test_call(body):
            return _answer(
                event,
                WebhookEvent.Outcome.TEST,
                200,
                module.success_response()[1],
                reason=rejected.reason,
            )
        outcome = (
            WebhookEvent.Outcome.REJECTED
            if rejected.status == 401
            else WebhookEvent.Outcome.MALFORMED
        )
        return _answer(
            event,
            outcome,
            rejected.status,
            {"success": False, "code": rejected.reason, "message": rejected.message_vi},
            reason=rejected.reason,
        )
    event.verify_scheme = verified.scheme[:40]
    event.verify_detail = (verified.detail or "")[:100]
    try:
        return module.parse(body)
    except WebhookRejected as rejected:
        return _answer(
            event,
            WebhookEvent.Outcome.MALFORMED,
            400,
            {"success": False, "code": rejected.reason, "message": rejected.message_vi},
            reason=rejected.reason,
        )


@dataclass
class _Authentic:
    """An authentic delivery on its way into the database."""

    connection: BankConnection
    event: WebhookEvent
    transfers: list[Transfer]
    created: list[BankTransaction] = field(default_factory=list)


def _store_authentic(
    connection: BankConnection, event: WebhookEvent, transfers: list[Transfer]
) -> Delivery:
    """One commit for the delivery, its new transactions and, on a database task queue,
    the processing task — shared with the deliveries this process is storing at the
    same moment (``_ingest``): a crash before that commit stores nothing and answers
    nothing, so the provider sends the delivery again."""
    from payments.tasks import process_events

    status, answer = PROVIDERS[connection.provider].success_response()
    event.http_status = status
    event.transfer_count = len(transfers)
    delivery = _Authentic(connection, event, transfers)
    try:
        if connections[DEFAULT_DB_ALIAS].in_atomic_block:
            # Inside a caller's transaction its commit decides: never share it.
            _write_authentic([delivery])
        else:
            _ingest.submit(delivery)
    except Exception:
        _store_failed(event)
        raise
    # Other task backends run or hand off the task at once: only after the commit.
    if delivery.created and not enqueues_in_transaction(process_events):
        process_events.enqueue([event.pk])
    return Delivery(status=status, body=answer, event_id=event.pk)


def _write_authentic(group: list[_Authentic]) -> None:
    """Store a group of authentic deliveries in one transaction: their events, their
    new transactions (a redelivery's are skipped by the database) and, on a database
    task queue, one processing task for those that brought new ones."""
    from payments.tasks import process_events

    if connections[DEFAULT_DB_ALIAS].vendor == "postgresql":
        from payments.groupwrite import fits

        if fits(len(group), sum(len(d.transfers) for d in group)):
            _write_authentic_statement(group)
            return
    # SQLite, or a group of batches too large for one statement: a few statements in
    # one transaction.
    for delivery in group:
        # Written as if every transfer were new (the common case); redeliveries are
        # corrected below in the same transaction, before anyone can see them.
        delivery.event.pk = None  # a retry alone after a failed group inserts anew
        delivery.event.outcome = _outcome(delivery.transfers, new=len(delivery.transfers))
        delivery.event.new_transactions = len(delivery.transfers)
    with transaction.atomic():
        insert_objects([delivery.event for delivery in group])
        created = store_transfer_rows(
            [
                new_transaction(delivery.connection, delivery.event, transfer)
                for delivery in group
                for transfer in delivery.transfers
            ]
        )
        by_event: dict[int, list[BankTransaction]] = {}
        for tx in created:
            by_event.setdefault(tx.event_id, []).append(tx)
        corrected = []
        for delivery in group:
            delivery.created = by_event.get(delivery.event.pk, [])
            if len(delivery.created) != len(delivery.transfers):
                delivery.event.outcome = _outcome(delivery.transfers, new=len(delivery.created))
                delivery.event.new_transactions = len(delivery.created)
                corrected.append(delivery.event)
        update_rows(WebhookEvent, ["outcome", "new_transactions"], corrected)
        fresh = [delivery.event.pk for delivery in group if delivery.created]
        if fresh and enqueues_in_transaction(process_events):
            process_events.enqueue(fresh)


def _write_authentic_statement(group: list[_Authentic]) -> None:
    """``_write_authentic`` on PostgreSQL: the whole group in one statement
    (``payments/groupwrite.py``)."""
    from payments.groupwrite import write_group
    from payments.tasks import process_events

    rows = [
        (i, new_transaction(delivery.connection, delivery.event, transfer))
        for i, delivery in enumerate(group)
        for transfer in delivery.transfers
    ]
    outcomes = [
        (_outcome(d.transfers, new=0), _outcome(d.transfers, new=len(d.transfers))) for d in group
    ]
    task = _task_row(process_events) if enqueues_in_transaction(process_events) else None
    for delivery in group:
        delivery.event.pk = None  # a retry alone after a failed group inserts anew
    events = [d.event for d in group]
    if connections[DEFAULT_DB_ALIAS].in_atomic_block:
        # In a caller's transaction a failed statement must not abort it: a savepoint.
        with transaction.atomic():
            created = write_group(events, outcomes, rows, task)
    else:
        created = write_group(events, outcomes, rows, task)  # atomic on its own
    by_event: dict[int, list[BankTransaction]] = {}
    for tx in created:
        by_event.setdefault(tx.event_id, []).append(tx)
    for delivery in group:
        delivery.created = by_event.get(delivery.event.pk, [])
    if task is not None and created:
        log.debug("Task id=%s path=%s enqueued backend=%s", task.pk, task.task_path, "db")


def _task_row(task: Any):
    """The unsaved row ``django-tasks-db`` would store for ``task.enqueue(…)``, its
    ``args_kwargs`` left to the statement that writes it (the events' ids)."""
    from django_tasks_db.models import DBTaskResult, get_date_max

    backend = task.get_backend()
    backend.validate_task(task)
    return DBTaskResult(
        id=backend._get_id(),
        args_kwargs={},
        priority=task.priority,
        task_path=task.module_path,
        queue_name=task.queue_name,
        run_after=task.run_after or get_date_max(),
        backend_name=backend.alias,
    )


# The deliveries this process's threads are storing at the same moment share one
# transaction (payments/groupcommit.py): under load, one commit for several.
_ingest: GroupCommit[_Authentic] = GroupCommit(_write_authentic)


def _outcome(transfers: list[Transfer], *, new: int) -> str:
    """What an authentic delivery of ``transfers`` was, ``new`` of them not seen before."""
    if transfers and all(t.is_test for t in transfers):
        return WebhookEvent.Outcome.TEST
    if transfers and not new:
        return WebhookEvent.Outcome.DUPLICATE
    return WebhookEvent.Outcome.ACCEPTED


def _answer(
    event: WebhookEvent, outcome: str, status: int, body: dict, *, reason: str = ""
) -> Delivery:
    event.outcome = outcome
    event.http_status = status
    event.reason = reason[:100]
    return Delivery(status=status, body=body, event_id=None)


def store_transfers(
    *,
    connection: BankConnection,
    event: WebhookEvent | None,
    transfers: list[Transfer],
    source: str = BankTransaction.Source.WEBHOOK,
) -> list[BankTransaction]:
    """One BankTransaction per new transfer; the new ones are returned."""
    return store_transfer_rows(
        [new_transaction(connection, event, transfer, source) for transfer in transfers]
    )


def store_transfer_rows(rows: list[BankTransaction]) -> list[BankTransaction]:
    """Insert the rows whose (connection, provider id) pair is new and return them.
    Known pairs are skipped by the database itself (``insert_or_skip_objects``): a
    concurrent redelivery that wins the race makes this insert a no-op for that row,
    counted as a duplicate; of two rows with the same pair, only the first is stored."""
    return insert_or_skip_objects(rows, ["connection", "provider_transaction_id"])


def new_transaction(
    connection: BankConnection,
    event: WebhookEvent | None,
    transfer: Transfer,
    source: str = BankTransaction.Source.WEBHOOK,
) -> BankTransaction:
    return BankTransaction(
        connection=connection,
        event=event,
        source=source,
        provider_transaction_id=transfer.provider_transaction_id[:100],
        direction=transfer.direction,
        amount_vnd=transfer.amount_vnd,
        content=transfer.content or "",
        description=transfer.description or "",
        bank_reference=(transfer.bank_reference or "")[:100],
        counter_account=(transfer.counter_account or "")[:40],
        counter_name=(transfer.counter_name or "")[:200],
        counter_bank=(transfer.counter_bank or "")[:100],
        sub_account=(transfer.sub_account or "")[:40],
        provider_code=(transfer.provider_code or "")[:40],
        bank_time=transfer.bank_time,
        running_balance_vnd=transfer.running_balance_vnd,
        is_test=transfer.is_test,
    )


def check_running_balance(connection: BankConnection, tx: BankTransaction) -> None:
    """Flag a missed webhook: previous balance ± amount must equal the new balance."""
    if tx.running_balance_vnd is None:
        return
    with transaction.atomic():
        conn = BankConnection.objects.select_for_update().get(pk=connection.pk)
        signed = tx.amount_vnd if tx.direction == "in" else -tx.amount_vnd
        late = conn.last_balance_at is not None and (
            tx.bank_time < conn.last_balance_at
            # Bank times have whole seconds: a same-second transfer that does not chain
            # on the last balance is an earlier one delivered late, not a gap.
            or (
                tx.bank_time == conn.last_balance_at
                and conn.last_balance_vnd is not None
                and conn.last_balance_vnd + signed != tx.running_balance_vnd
            )
        )
        if late:
            _late_delivery_fills_gap(conn, tx, signed)
            return
        if conn.last_balance_vnd is not None:
            expected = conn.last_balance_vnd + signed
            if expected != tx.running_balance_vnd:
                conn.balance_gaps += 1
                conn.last_gap_note = (
                    f"{tx.bank_time:%d/%m/%Y %H:%M}: số dư {tx.running_balance_vnd:,} ≠ "
                    f"{conn.last_balance_vnd:,} {signed:+,} — có thể thiếu giao dịch"
                ).replace(",", ".")[:300]
        conn.last_balance_vnd = tx.running_balance_vnd
        conn.last_balance_at = tx.bank_time
        conn.save(
            update_fields=["last_balance_vnd", "last_balance_at", "balance_gaps", "last_gap_note"]
        )


def _late_delivery_fills_gap(conn: BankConnection, tx: BankTransaction, signed: int) -> None:
    """A late transfer that sits exactly between two balances that did not chain was
    the missing one: the gap it explains is taken back."""
    if not conn.balance_gaps:
        return
    earlier = (
        BankTransaction.objects.filter(
            connection=conn,
            running_balance_vnd__isnull=False,
            bank_time__lte=tx.bank_time,
            is_test=False,
        )
        .exclude(pk=tx.pk)
        .order_by("-bank_time", "-pk")
        .first()
    )
    later = (
        BankTransaction.objects.filter(
            connection=conn,
            running_balance_vnd__isnull=False,
            bank_time__gte=tx.bank_time,
            is_test=False,
        )
        .exclude(pk=tx.pk)
        .order_by("bank_time", "pk")
        .first()
    )
    if earlier is None or later is None:
        return
    later_signed = later.amount_vnd if later.direction == "in" else -later.amount_vnd
    chained_before = earlier.running_balance_vnd + later_signed == later.running_balance_vnd
    chains_now = (
        earlier.running_balance_vnd + signed == tx.running_balance_vnd
        and tx.running_balance_vnd + later_signed == later.running_balance_vnd
    )
    if chains_now and not chained_before:
        conn.balance_gaps -= 1
        if conn.balance_gaps == 0:
            conn.last_gap_note = ""
        conn.save(update_fields=["balance_gaps", "last_gap_note"])


def event_process(event_id: int) -> int:
    """Reconcile the transactions of an authentic event and check their running balance;
    idempotent. Records any error on the event instead of losing it. Returns how many
    transactions it reconciled."""
    from payments import reconciliation

    event = WebhookEvent.objects.get(pk=event_id)
    WebhookEvent.objects.filter(pk=event_id).update(attempts=F("attempts") + 1)
    try:
        ids = list(
            event.transactions.filter(reconciled_at__isnull=True).values_list("id", flat=True)
        )
        if len(ids) == 1:
            reconciliation.reconcile(ids[0])
        elif ids:
            reconciliation.reconcile_many(ids)
        # The running-balance chain is checked here, not in the request: it locks the
        # connection row, which would queue every delivery of that account behind it.
        for tx in BankTransaction.objects.filter(
            pk__in=ids, running_balance_vnd__isnull=False, is_test=False
        ).order_by("bank_time", "pk"):
            check_running_balance(event.connection, tx)
    except Exception:
        log.exception("processing webhook event %s failed", event_id)
        WebhookEvent.objects.filter(pk=event_id).update(
            processing_error=traceback.format_exc()[-4000:]
        )
        raise
    WebhookEvent.objects.filter(pk=event_id).update(
        processed_at=timezone.now(), processing_error=""
    )
    return len(ids)


def events_process(event_ids: list[int]) -> int:
    """``event_process`` for each event in turn; one event's failure (recorded on it)
    does not keep the others from being processed, and fails the whole call after."""
    reconciled = 0
    failed = []
    for event_id in event_ids:
        try:
            reconciled += event_process(event_id)
        except Exception:
            failed.append(event_id)
    if failed:
        raise RuntimeError(f"processing webhook events {failed} failed (see each event)")
    return reconciled


def replayable(event: WebhookEvent) -> bool:
    """Stored as authentic, or verified as authentic and then not stored because of an
    error of ours (answered 500, kept as received with the error)."""
    if event.outcome in (WebhookEvent.Outcome.ACCEPTED, WebhookEvent.Outcome.DUPLICATE):
        return True
    return (
        event.outcome == WebhookEvent.Outcome.RECEIVED
        and event.http_status == 500
        and bool(event.verify_scheme)
    )


def event_reprocess(event: WebhookEvent) -> int:
    """Replay an event that was stored as authentic: re-parse its stored bytes (a
    redelivery-safe no-op for transfers already stored) and process them again. A
    delivery that was verified but whose transfers were not stored because of an error
    of ours gets them now, and the outcome it would have had."""
    if not replayable(event):
        return 0
    module = PROVIDERS[event.connection.provider]
    transfers = module.parse(bytes(event.body))
    with transaction.atomic():
        created = store_transfers(connection=event.connection, event=event, transfers=transfers)
        if event.outcome == WebhookEvent.Outcome.RECEIVED:
            event.outcome = _outcome(transfers, new=len(created))
            event.transfer_count = len(transfers)
            event.new_transactions = len(created)
            update_rows(WebhookEvent, ["outcome", "transfer_count", "new_transactions"], [event])
    return event_process(event.pk)
