"""A group of authentic webhook deliveries written in one statement (PostgreSQL).

What ``services._write_authentic`` stores for a group — the events, their new bank
transactions (a redelivery's skipped by the unique key), each event's outcome and count
of new transactions, and one processing task for the events that brought new ones — is
one ``WITH … INSERT`` statement here, sent in autocommit: one round trip and one commit
for the group instead of BEGIN, four statements and COMMIT. A single statement is
atomic, so nothing changes for a reader: either the whole group is stored or nothing.

    WITH ids AS (SELECT n, nextval(<event id sequence>) AS id FROM generate_series(1, N) n),
         tx AS (INSERT INTO <transactions> (event_id, …)
                SELECT ids.id, v.… FROM (VALUES (n, r, …), …) v JOIN ids USING (n)
                ORDER BY v.n, v.r
                ON CONFLICT (connection_id, provider_transaction_id) DO NOTHING
                RETURNING id, event_id, provider_transaction_id),
         ev AS (INSERT INTO <events> (id, …, outcome, new_transactions)
                SELECT ids.id, v.…, CASE WHEN k.new = 0 THEN v.o0 ELSE v.o1 END, k.new
                FROM (VALUES …) v JOIN ids USING (n),
                     LATERAL (SELECT count(*) FROM tx WHERE tx.event_id = ids.id) k),
         task AS (INSERT INTO <task results> (…, args_kwargs, …)
                  SELECT …, {"args": [[the events with new transactions]], "kwargs": {}}
                  WHERE some event has new transactions)
    SELECT 'e', n, id FROM ids UNION ALL SELECT 't', event_id, id, provider id FROM tx

The event ids are drawn first so that each transaction row names its event; the rows
are inserted in the order of the group, so of two deliveries of one transfer in the
same group the first carries it (``ON CONFLICT DO NOTHING`` skips a row whose key an
earlier row of the same statement inserted). Foreign keys are deferred to the commit,
so a transaction may be inserted before its event within the statement.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, models

from market40 import bulk
from market40.bulk import bound_cursor, column_values
from payments.models import BankTransaction, WebhookEvent

# Written by the statement from the transactions it inserted, not sent.
_COMPUTED_EVENT_FIELDS = ("outcome", "new_transactions")


def fits(events: int, transactions: int) -> bool:
    """Whether a group of ``events`` carrying ``transactions`` fits in one statement
    (``market40.bulk.MAX_PARAMETERS``; PostgreSQL takes at most 65,535)."""
    event_fields, tx_fields, task_fields = _fields()
    count = events * (len(event_fields) + 3) + transactions * (len(tx_fields) + 2)
    return count + len(task_fields) <= bulk.MAX_PARAMETERS


def write_group(
    events: Sequence[WebhookEvent],
    outcomes: Sequence[tuple[str, str]],
    transactions: Sequence[tuple[int, BankTransaction]],
    task: models.Model | None,
) -> list[BankTransaction]:
    """Insert ``events`` (new, unsaved) and those of ``transactions`` — (index of their
    event in ``events``, unsaved row) — whose (connection, provider id) is new; set the
    primary keys and each event's ``outcome`` (``outcomes[i]``: the outcome with no new
    transaction, with some) and ``new_transactions``. ``task`` is an unsaved
    ``DBTaskResult`` whose ``args_kwargs`` the statement fills with the ids of the
    events that brought new transactions, inserted only if there are any. Returns the
    inserted transactions."""
    db = connections[DEFAULT_DB_ALIAS]
    sql = _statement(len(events), len(transactions), task is not None)
    params: list[Any] = []
    event_fields, tx_fields, task_fields = _fields()
    # In the order of the placeholders: the transactions' rows (n, r, columns…), the
    # events' (n, columns…, outcome with none new, with some), the task's.
    rows = [row for _index, row in transactions]
    tx_columns = [column_values(f, rows, db) for f in tx_fields]
    for r, (index, _row) in enumerate(transactions):
        params.extend((index, r))
        params.extend(column[r] for column in tx_columns)
    event_columns = [column_values(f, events, db) for f in event_fields]
    for i, (none, some) in enumerate(outcomes):
        params.append(i)
        params.extend(column[i] for column in event_columns)
        params.extend((none, some))
    if task is not None:
        params.extend(column_values(f, [task], db)[0] for f in task_fields)
    # Prepared on its first use on each connection: the same text comes back for every
    # group of the same size, and planning it costs PostgreSQL more than running it.
    with bound_cursor(db, raw=True, prepare=True) as cursor:
        cursor.execute(sql, params)
        result = cursor.fetchall()
    ids: dict[int, int] = {}
    inserted: dict[tuple[int, str], int] = {}
    for kind, n, pk, provider_id in result:
        if kind == "e":
            ids[n] = pk
        else:
            inserted[(n, provider_id)] = pk  # n is the event's id here
    new_per_event = [0] * len(events)
    created = []
    for index, row in transactions:
        pk = inserted.pop((ids[index], row.provider_transaction_id), None)
        row.event_id = ids[index]
        if pk is None:
            continue
        row.pk = pk
        row._state.adding = False
        row._state.db = db.alias
        new_per_event[index] += 1
        created.append(row)
    for i, event in enumerate(events):
        event.pk = ids[i]
        event._state.adding = False
        event._state.db = db.alias
        event.new_transactions = new_per_event[i]
        event.outcome = outcomes[i][1] if new_per_event[i] else outcomes[i][0]
    if task is not None and created:
        task._state.adding = False
        task._state.db = db.alias
    return created


@functools.cache
def _fields() -> tuple[list[models.Field], list[models.Field], list[models.Field]]:
    event_fields = [
        f
        for f in WebhookEvent._meta.concrete_fields
        if not f.primary_key and f.name not in _COMPUTED_EVENT_FIELDS
    ]
    tx_fields = [
        f for f in BankTransaction._meta.concrete_fields if not f.primary_key and f.name != "event"
    ]
    from django_tasks_db.models import DBTaskResult

    task_fields = [f for f in DBTaskResult._meta.concrete_fields if f.name != "args_kwargs"]
    return event_fields, tx_fields, task_fields


@functools.lru_cache(maxsize=256)
def _statement(events: int, transactions: int, with_task: bool) -> str:
    db = connections[DEFAULT_DB_ALIAS]
    quote = db.ops.quote_name
    event_fields, tx_fields, task_fields = _fields()

    def values(fields: list[models.Field], keys: list[str], rows: int, extra: list[str]) -> str:
        # Only the first row's placeholders are typed: PostgreSQL gives the others the
        # same types (an untyped NULL or string would otherwise be read as text).
        first = [f"%s::{k}" for k in keys] + [f"%s::{_type(f, db)}" for f in fields]
        first += [f"%s::{e}" for e in extra]
        other = ["%s"] * len(first)
        return ", ".join("(" + ", ".join(first if r == 0 else other) + ")" for r in range(rows))

    ev_table = quote(WebhookEvent._meta.db_table)
    ev_pk = quote(WebhookEvent._meta.pk.column)
    ev_names = [quote(f.column) for f in event_fields]
    ev_v = [f"e{i}" for i in range(len(event_fields))]
    tx_table = quote(BankTransaction._meta.db_table)
    tx_pk = quote(BankTransaction._meta.pk.column)
    tx_names = [quote(f.column) for f in tx_fields]
    tx_v = [f"t{i}" for i in range(len(tx_fields))]
    tx_event = quote(BankTransaction._meta.get_field("event").column)
    tx_provider_id = quote(BankTransaction._meta.get_field("provider_transaction_id").column)
    conflict = ", ".join(
        quote(BankTransaction._meta.get_field(name).column)
        for name in ("connection", "provider_transaction_id")
    )
    outcome = _type(WebhookEvent._meta.get_field("outcome"), db)
    parts = [
        "WITH ids AS (SELECT n - 1 AS n, "
        f"nextval(pg_get_serial_sequence('{WebhookEvent._meta.db_table}', "
        f"'{WebhookEvent._meta.pk.column}')) AS id "
        f"FROM generate_series(1, {events}) AS n)"
    ]
    if transactions:
        parts.append(
            f"tx AS (INSERT INTO {tx_table} ({tx_event}, {', '.join(tx_names)}) "
            f"SELECT ids.id, {', '.join('v.' + c for c in tx_v)} "
            f"FROM (VALUES {values(tx_fields, ['integer', 'integer'], transactions, [])}) "
            f"AS v(n, r, {', '.join(tx_v)}) JOIN ids ON ids.n = v.n ORDER BY v.n, v.r "
            f"ON CONFLICT ({conflict}) DO NOTHING "
            f"RETURNING {tx_pk} AS id, {tx_event} AS event_id, {tx_provider_id} AS provider_id)"
        )
    else:
        parts.append(
            "tx AS (SELECT NULL::bigint AS id, NULL::bigint AS event_id, "
            "NULL::varchar AS provider_id WHERE false)"
        )
    parts.append(
        f"ev AS (INSERT INTO {ev_table} ({ev_pk}, {', '.join(ev_names)}, "
        f"{quote('outcome')}, {quote('new_transactions')}) "
        f"SELECT ids.id, {', '.join('v.' + c for c in ev_v)}, "
        "CASE WHEN k.new = 0 THEN v.o0 ELSE v.o1 END, k.new "
        f"FROM (VALUES {values(event_fields, ['integer'], events, [outcome, outcome])}) "
        f"AS v(n, {', '.join(ev_v)}, o0, o1) JOIN ids ON ids.n = v.n, "
        "LATERAL (SELECT count(*) AS new FROM tx WHERE tx.event_id = ids.id) AS k)"
    )
    if with_task:
        from django_tasks_db.models import DBTaskResult

        task_table = quote(DBTaskResult._meta.db_table)
        task_names = [quote(f.column) for f in task_fields]
        task_values = ", ".join(f"%s::{_type(f, db)}" for f in task_fields)
        parts.append(
            f"task AS (INSERT INTO {task_table} ({', '.join(task_names)}, "
            f"{quote('args_kwargs')}) "
            f"SELECT {task_values}, jsonb_build_object('args', jsonb_build_array(a.ids), "
            "'kwargs', '{}'::jsonb) "
            "FROM (SELECT jsonb_agg(ids.id ORDER BY ids.n) AS ids FROM ids "
            "WHERE EXISTS (SELECT 1 FROM tx WHERE tx.event_id = ids.id)) AS a "
            "WHERE a.ids IS NOT NULL)"
        )
    sql = (
        ", ".join(parts) + " SELECT 'e', n, id, NULL FROM ids "
        "UNION ALL SELECT 't', event_id, id, provider_id FROM tx"
    )
    # PostgreSQL's own placeholders, numbered in order (a raw cursor sends them as
    # they are); the text holds no other "%s".
    numbers = itertools.count(1)
    return re.sub("%s", lambda _match: f"${next(numbers)}", sql)


def _type(field: models.Field, db) -> str:
    """The column's type without a length: a cast to ``varchar(100)`` would cut a longer
    value silently, where the column itself refuses it."""
    return field.db_type(db).split("(")[0]
