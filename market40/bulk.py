"""One-statement bulk inserts for large batches (billing runs, imports).

``bulk_create`` splits rows into batches bounded by the database's parameter limit
(about 60 demands per INSERT on SQLite), so the query count grows with the batch size.
``insert_rows`` sends the rows in one statement whatever their number: ``COPY … FROM
STDIN`` on PostgreSQL, one prepared INSERT with ``executemany`` on SQLite; dates are
converted by each field's own ``get_db_prep_save`` exactly as the ORM does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import DEFAULT_DB_ALIAS, connections, models


def insert_rows(
    model: type[models.Model], field_names: Sequence[str], rows: Iterable[Sequence[object]]
) -> None:
    db = connections[DEFAULT_DB_ALIAS]  # resolved once: the proxy costs a lookup per use
    fields = [model._meta.get_field(name) for name in field_names]
    table = db.ops.quote_name(model._meta.db_table)
    columns = ", ".join(db.ops.quote_name(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    # Dates and JSON go through the field's own conversion; a Decimal is passed as is
    # (both drivers adapt it exactly; callers quantize to the field's places).
    preps = [
        (lambda v, f=f: f.get_db_prep_save(v, db))
        if isinstance(f, models.DateField | models.JSONField)
        else None
        for f in fields
    ]
    if not any(preps):
        converted: Iterable[Sequence[object]] = rows
    else:
        converted = (
            [v if p is None else p(v) for v, p in zip(row, preps, strict=True)] for row in rows
        )
    with db.cursor() as cursor:
        if db.vendor == "postgresql":
            # COPY streams every row in one statement: on PostgreSQL an executemany is
            # still one round trip per row.
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in converted:
                    copy.write_row(row)
        else:
            cursor.executemany(
                f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", converted
            )


def update_rows(
    model: type[models.Model],
    field_names: Sequence[str],
    objects: Iterable[models.Model],
) -> None:
    """Write ``field_names`` of many objects in one statement per call.

    On PostgreSQL: one ``UPDATE … FROM unnest(%s::type[], …)``, the columns sent as
    arrays (an ``executemany`` there is still one statement per row, even pipelined).
    On SQLite, and for a single row: one prepared ``UPDATE … WHERE pk = %s``.
    ``bulk_update`` builds a CASE WHEN per object and field, which costs more Python
    time than the database spends on the rows."""
    db = connections[DEFAULT_DB_ALIAS]
    fields = [model._meta.get_field(name) for name in field_names]
    quote = db.ops.quote_name
    table = quote(model._meta.db_table)
    pk_field = model._meta.pk
    pk = quote(pk_field.column)
    rows = [
        [f.get_db_prep_save(getattr(obj, f.attname), db) for f in fields] + [obj.pk]
        for obj in objects
    ]
    if not rows:
        return
    with db.cursor() as cursor:
        if db.vendor == "postgresql" and len(rows) > 1:
            columns = list(zip(*rows, strict=True))
            types = [f.cast_db_type(db) for f in fields] + [pk_field.cast_db_type(db)]
            names = [f"c{i}" for i in range(len(types))]
            arrays = ", ".join(f"%s::{t}[]" for t in types)
            assignments = ", ".join(
                f"{quote(f.column)} = v.{name}" for f, name in zip(fields, names, strict=False)
            )
            source = f"unnest({arrays}) AS v({', '.join(names)})"
            cursor.execute(
                f"UPDATE {table} SET {assignments} FROM {source} "
                f"WHERE {table}.{pk} = v.{names[-1]}",
                [list(column) for column in columns],
            )
        else:
            assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields)
            cursor.executemany(f"UPDATE {table} SET {assignments} WHERE {pk} = %s", rows)


def insert_or_skip(obj: models.Model, conflict_fields: Sequence[str]) -> bool:
    """Insert ``obj`` unless a row with the same ``conflict_fields`` exists; on insert,
    set its primary key and return True.

    One ``INSERT … ON CONFLICT (…) DO NOTHING RETURNING pk`` (PostgreSQL, and SQLite
    since 3.35) in place of an existence check, a savepoint, an INSERT and a release:
    a concurrent insert of the same key waits for the other transaction and then
    does nothing, so two racing redeliveries can never both insert or both fail.
    ``conflict_fields`` must be exactly the columns of a unique constraint."""
    return _insert_returning(obj, conflict_fields)


def insert_one(obj: models.Model) -> None:
    """``obj.save(force_insert=True)`` in one prepared INSERT … RETURNING pk, without the
    ORM's per-call query compilation: for the few hot single-row inserts (a webhook
    delivery) where that compilation costs more than the database does."""
    _insert_returning(obj, None)


def _insert_returning(obj: models.Model, conflict_fields: Sequence[str] | None) -> bool:
    db = connections[DEFAULT_DB_ALIAS]
    meta = obj._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key or obj.pk is not None]
    quote = db.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    values = [f.get_db_prep_save(f.pre_save(obj, True), db) for f in fields]
    placeholders = ", ".join(["%s"] * len(fields))
    conflict = ""
    if conflict_fields:
        target = ", ".join(quote(meta.get_field(name).column) for name in conflict_fields)
        conflict = f"ON CONFLICT ({target}) DO NOTHING "
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({placeholders}) "
        f"{conflict}RETURNING {quote(meta.pk.column)}"
    )
    with db.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return False
    obj.pk = row[0]
    obj._state.adding = False
    obj._state.db = db.alias
    return True
