"""One-statement bulk inserts for large batches (billing runs, imports).

``bulk_create`` splits rows into batches bounded by the database's parameter limit
(about 60 demands per INSERT on SQLite), so the query count grows with the batch size.
``insert_rows`` sends the rows in one statement whatever their number: ``COPY … FROM
STDIN`` on PostgreSQL, one prepared INSERT with ``executemany`` on SQLite; dates are
converted by each field's own ``get_db_prep_save`` exactly as the ORM does.
"""

from __future__ import annotations

import functools
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


def insert_one(obj: models.Model) -> None:
    """``obj.save(force_insert=True)`` in one prepared INSERT … RETURNING pk, without the
    ORM's per-call query compilation: for the few hot single-row inserts (a webhook
    delivery) where that compilation costs more than the database does."""
    _insert_returning(obj, None)


# A statement carries at most this many parameters (PostgreSQL's limit is 65,535).
MAX_PARAMETERS = 30_000


def insert_objects(objects: Sequence[models.Model]) -> None:
    """Insert new instances of one model and set their primary keys.

    On PostgreSQL one multi-row ``INSERT … RETURNING pk`` per 30,000 parameters (the
    rows come back in the order of the VALUES list, which ``bulk_create`` relies on
    too); elsewhere one ``insert_one`` each. The groups of webhook deliveries committed
    together (``payments.groupcommit``) are written with it on SQLite and when too large
    for the one statement of ``payments.groupwrite``."""
    if not objects:
        return
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        for obj in objects:
            _insert_returning(obj, None)
        return
    pk = db.ops.quote_name(objects[0]._meta.pk.column)
    for chunk, sql, params in _multi_row_insert(objects, db, f"RETURNING {pk}"):
        with bound_cursor(db) as cursor:
            cursor.execute(sql, params)
            ids = cursor.fetchall()
        for obj, (value,) in zip(chunk, ids, strict=True):
            obj.pk = value
            obj._state.adding = False
            obj._state.db = db.alias


def insert_or_skip_objects(
    objects: Sequence[models.Model], conflict_fields: Sequence[str]
) -> list[models.Model]:
    """Insert those of ``objects`` (instances of one model) whose ``conflict_fields``
    are new, and return them with their primary keys set. Of several with the same key,
    in the database or among ``objects``, none or only the first is inserted.

    ``INSERT … ON CONFLICT (…) DO NOTHING RETURNING pk`` in place of an existence
    check, a savepoint, an INSERT and a release: a concurrent insert of the same key
    waits for the other transaction and then does nothing, so two racing redeliveries
    can never both insert or both fail. On PostgreSQL one multi-row statement per
    30,000 parameters, the returned keys telling which rows were inserted; elsewhere
    (SQLite since 3.35) one statement per object. ``conflict_fields`` must be exactly
    the columns of a unique constraint."""
    if not objects:
        return []
    meta = objects[0]._meta
    keys = [meta.get_field(name) for name in conflict_fields]
    if any(isinstance(f, _CONVERTED) for f in keys):
        # The returned keys are matched with the objects' attributes as they are.
        raise ValueError("insert_or_skip_objects: a key column must be stored as it is held")
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        return [obj for obj in objects if _insert_returning(obj, conflict_fields)]
    quote = db.ops.quote_name
    key_columns = ", ".join(quote(f.column) for f in keys)
    pk = quote(meta.pk.column)
    tail = f"ON CONFLICT ({key_columns}) DO NOTHING RETURNING {pk}, {key_columns}"
    inserted: list[models.Model] = []
    for chunk, sql, params in _multi_row_insert(objects, db, tail):
        with bound_cursor(db) as cursor:
            cursor.execute(sql, params)
            returned = {tuple(row[1:]): row[0] for row in cursor.fetchall()}
        for obj in chunk:
            key = tuple(getattr(obj, f.attname) for f in keys)
            if key in returned:
                obj.pk = returned.pop(key)  # only the first object of a key got it
                obj._state.adding = False
                obj._state.db = db.alias
                inserted.append(obj)
    return inserted


def bound_cursor(db, *, raw: bool = False, prepare: bool = False):
    """A cursor that sends the parameters apart from the statement (PostgreSQL's
    extended protocol) instead of quoting each into its text as Django's cursors do:
    for a statement of many rows, less work for the driver, and the same text for the
    same number of rows, which psycopg prepares once it has seen it a few times.

    ``raw``: the statement is written with PostgreSQL's own ``$1, $2, …``
    placeholders, which psycopg passes on as they are; it does not scan the text for
    ``%s`` each time (a cost that grows with the statement, and that psycopg caches
    only for statements under 4 KB and 50 parameters).

    ``prepare``: each statement is prepared on the connection at its first execution
    and reused after (psycopg keeps the 100 last); Django turns psycopg's automatic
    preparing off by default, for poolers in transaction mode (PgBouncer before 1.21),
    so this is for the few hot statements of a fixed shape only."""
    db.ensure_connection()
    with db.wrap_database_errors:
        return db._prepare_cursor(_cursor_class(raw, prepare)(db.connection))


@functools.cache
def _cursor_class(raw: bool, prepare: bool) -> type:
    import psycopg

    base = psycopg.RawCursor if raw else psycopg.Cursor
    if not prepare:
        return base

    class PreparingCursor(base):
        def execute(self, query, params=None, *, prepare=True, binary=None):
            return super().execute(query, params, prepare=prepare, binary=binary)

    return PreparingCursor


def _multi_row_insert(
    objects: Sequence[models.Model], db, tail: str
) -> Iterable[tuple[Sequence[models.Model], str, list[object]]]:
    """(rows, statement, parameters) inserting ``objects`` in chunks, each statement
    ending in ``tail``. A column whose value is the same in every row of the chunk
    (the connection, a status, an empty note) is sent once:
    ``INSERT INTO t (a, b, c) SELECT v.*, %s FROM (VALUES (%s, %s), (%s, %s)) AS v``;
    a chunk of one row is a plain ``VALUES (…)``."""
    fields, table, casts = _insert_parts(type(objects[0]), db.alias)
    quote = db.ops.quote_name
    size = max(1, MAX_PARAMETERS // len(fields))
    for start in range(0, len(objects), size):
        chunk = objects[start : start + size]
        columns = [column_values(f, chunk, db) for f in fields]
        if len(chunk) == 1:
            names = ", ".join(quote(f.column) for f in fields)
            row = "(" + ", ".join(["%s"] * len(fields)) + ")"
            params = [column[0] for column in columns]
            yield chunk, f"INSERT INTO {table} ({names}) VALUES {row} {tail}", params
            continue
        same = [all(v == column[0] for v in column) for column in columns]
        varying = [i for i in range(len(fields)) if not same[i]]
        constant = [i for i in range(len(fields)) if same[i]]
        names = ", ".join(quote(fields[i].column) for i in varying + constant)
        # Typed placeholders: a VALUES list in a subquery would read an untyped one
        # (a NULL, a string) as text, which a numeric or time column does not accept.
        row = "(" + ", ".join(casts[i] for i in varying) + ")"
        select = ", ".join(["v.*"] * bool(varying) + [casts[i] for i in constant])
        source = f" FROM (VALUES {', '.join([row] * len(chunk))}) AS v" if varying else ""
        # In the order of the placeholders: the select list's, then the rows'.
        params = [columns[i][0] for i in constant]
        params += [columns[i][r] for r in range(len(chunk)) for i in varying]
        yield chunk, f"INSERT INTO {table} ({names}) SELECT {select}{source} {tail}", params


@functools.cache
def _insert_parts(
    model: type[models.Model], alias: str
) -> tuple[list[models.Field], str, list[str]]:
    db = connections[alias]
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    casts = [f"%s::{f.cast_db_type(db)}" for f in fields]
    return fields, db.ops.quote_name(model._meta.db_table), casts


# Fields whose value the driver cannot take as the attribute holds it.
_CONVERTED = (models.DateField, models.JSONField, models.BinaryField, models.DecimalField)


def column_values(field: models.Field, objects: Sequence[models.Model], db) -> list[object]:
    if isinstance(field, _CONVERTED):
        return [field.get_db_prep_save(field.pre_save(obj, True), db) for obj in objects]
    return [getattr(obj, field.attname) for obj in objects]


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
