"""One-statement bulk inserts for large batches (billing runs, imports).

``bulk_create`` splits rows into batches bounded by the database's parameter limit
(about 60 demands per INSERT on SQLite), so the query count grows with the batch size.
``insert_rows`` sends one prepared INSERT with ``executemany`` instead: one round of
statement preparation whatever the number of rows (psycopg 3 pipelines it), and
values are converted by each field's own ``get_db_prep_save`` exactly as the ORM does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import connection, models


def insert_rows(
    model: type[models.Model], field_names: Sequence[str], rows: Iterable[Sequence[object]]
) -> None:
    fields = [model._meta.get_field(name) for name in field_names]
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    preps = [
        (lambda v, f=f: f.get_db_prep_save(v, connection))
        if isinstance(f, models.DateField | models.DecimalField | models.JSONField)
        else None
        for f in fields
    ]
    converted = (
        [v if p is None else p(v) for v, p in zip(row, preps, strict=True)] for row in rows
    )
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({placeholders})", converted)


def update_rows(
    model: type[models.Model],
    field_names: Sequence[str],
    objects: Iterable[models.Model],
) -> None:
    """Write ``field_names`` of many objects with one prepared UPDATE … WHERE pk = %s
    sent by ``executemany``. ``bulk_update`` builds a CASE WHEN per object and field,
    which costs more Python time than the database spends on the rows."""
    fields = [model._meta.get_field(name) for name in field_names]
    table = connection.ops.quote_name(model._meta.db_table)
    assignments = ", ".join(f"{connection.ops.quote_name(f.column)} = %s" for f in fields)
    pk = connection.ops.quote_name(model._meta.pk.column)
    rows = (
        [f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields] + [obj.pk]
        for obj in objects
    )
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {table} SET {assignments} WHERE {pk} = %s", rows)
