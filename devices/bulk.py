"""Bulk writes that stay fast at 100,000 rows: COPY through a temporary table on PostgreSQL.

Django's bulk_create on PostgreSQL sends rows as text arrays (UNNEST), and psycopg escapes every
element in Python; for JSON-heavy rows that cost more than the rest of a discovery. COPY streams
the same rows in PostgreSQL's own format, and one INSERT ... SELECT applies them, with the same
conflict handling as bulk_create. Other databases use bulk_create.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import orjson
from django.db import IntegrityError, connection, models, transaction
from django.db.models import signals
from django.db.models.base import ModelState
from psycopg import postgres

M = TypeVar("M", bound=models.Model)

# Up to this many rows go as one INSERT ... VALUES: the temporary table and COPY cost five more round trips, which
# is most of the work for the one report a device posts to the API.
FEW_ROWS = 50


def _columns(model: type[models.Model]) -> list[models.Field]:
    """The columns the portal writes: not the key, nor what the database computes (GeneratedField)."""
    return [f for f in model._meta.concrete_fields if not f.primary_key and not f.generated]


def _row_maker(fields: Sequence[models.Field], copy: bool = False):
    """A function from an instance to its row of values: JSON fields as their text, or for a COPY (_copy_in) in
    jsonb's binary form."""
    plain = [(f.attname, isinstance(f, models.JSONField)) for f in fields]
    dumps = orjson.dumps

    def row(obj: models.Model) -> list:
        values = obj.__dict__
        return [dumps(values[name]).decode() if is_json else values[name] for name, is_json in plain]

    def copy_row(obj: models.Model) -> list:
        values = obj.__dict__
        return [JSONB_VERSION + dumps(values[name]) if is_json else values[name] for name, is_json in plain]

    return copy_row if copy else row


# jsonb's binary form: a version byte, then the JSON text.
JSONB_VERSION = b"\x01"
BYTEA = postgres.types["bytea"].oid


def _type_oid(field: models.Field) -> int:
    """The type a binary COPY sends the field's values as: the column's own (its name without a length), and a
    JSON field's as bytes, which are already jsonb's binary form (JSONB_VERSION and the text)."""
    if isinstance(field, models.JSONField):
        return BYTEA
    return postgres.types[field.db_type(connection).partition("(")[0]].oid


def _copy_in(cursor, table: str, fields: Sequence[models.Field], rows: Iterable[Sequence]) -> None:
    """COPY `rows` (values in the order of `fields`) into `table` in PostgreSQL's binary format. In the text format
    psycopg escapes every text value character by character: copying a first run's 96,942 device rows took the
    client 1.8-2.0 s of CPU that way, 0.6 s this way, and the copy's 303,993 rows 1.8-2.0 s against 0.65-0.7 s
    (bench/README.md). The values must be of their columns' types (no text for a time), as Django's fields hold
    them."""
    names = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with (
        connection.wrap_database_errors,
        cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types([_type_oid(f) for f in fields])
        for row in rows:
            copy.write_row(row)


def instance_maker(model: type[M]) -> Callable[[dict[str, Any]], M]:
    """A function from a dict of attribute values to an unsaved instance, the other fields at their defaults.

    The instance's attributes are set as Model.__init__ leaves them, without its per-field pass: a Device built from
    keywords took 35 us, through __init__'s positional path 10-16 us, this way 4 us, and a first discovery builds
    100,000 of them (and as many status changes) to hand to bulk_write. __init__ also sends pre_init and post_init:
    if anything listens to those for the model when the maker is made, its instances are made through __init__. A
    callable default (a moment, a list) is called for each instance that lacks the field."""
    fields = model._meta.concrete_fields
    # A field without a default has NOT_PROVIDED there, a class, so callable: its default ("" or None) is fixed.
    called = {f.attname: f for f in fields if f.has_default() and callable(f.default)}
    fixed = {f.attname: f.get_default() for f in fields if f.attname not in called}
    names = [f.attname for f in fields]
    known = set(names)
    new = object.__new__

    listened = signals.pre_init.has_listeners(model) or signals.post_init.has_listeners(model)

    def make(values: dict[str, Any]) -> M:
        if not known.issuperset(values):  # (a third of the time of values.keys() - known)
            raise TypeError(f"{model.__name__} has no fields {sorted(values.keys() - known)}")
        if listened:
            return model(*[values[name] if name in values else default_of(name) for name in names])
        obj = new(model)
        attributes = obj.__dict__
        attributes.update(fixed)
        for name, field in called.items():
            if name not in values:
                attributes[name] = field.get_default()
        attributes.update(values)
        obj._state = ModelState()
        return obj

    def default_of(name: str) -> Any:
        return fixed[name] if name in fixed else called[name].get_default()

    return make


def _scratch(cursor, model: type[models.Model]) -> str:
    """An empty temporary table shaped like the model's table without its key, for this session."""
    table = model._meta.db_table
    scratch = connection.ops.quote_name(f"bulk_{table}")
    names = ", ".join(connection.ops.quote_name(f.column) for f in _columns(model))
    cursor.execute(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {scratch} AS SELECT {names} FROM {table} WITH NO DATA"
    )
    cursor.execute(f"TRUNCATE {scratch}")
    return scratch


def copy_rows(
    model: type[models.Model],
    columns: Sequence[str],
    rows: Sequence[Sequence],
    *,
    ignore_conflicts: bool = False,
) -> None:
    """Insert plain rows (values for `columns`, attribute names; a JSON field's as its JSON text) without building
    model instances, in a savepoint: a row the table refuses raises Django's IntegrityError, as any write does, and
    leaves nothing of the rows."""
    if not rows:
        return
    fields = [model._meta.get_field(c) for c in columns]
    json = [i for i, f in enumerate(fields) if isinstance(f, models.JSONField)]
    if connection.vendor != "postgresql":
        with transaction.atomic():
            model.objects.bulk_create(
                [model(**dict(zip(columns, _json_values(row, json), strict=True))) for row in rows],
                ignore_conflicts=ignore_conflicts,
            )
        return
    table = model._meta.db_table
    names = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    if json:
        rows = [_jsonb_text(row, json) for row in rows]
    with transaction.atomic(), connection.cursor() as cursor:
        target = scratch = _scratch(cursor, model) if ignore_conflicts else table
        _copy_in(cursor, target, fields, rows)
        if ignore_conflicts:
            cursor.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM {scratch} ON CONFLICT DO NOTHING"
            )


def _json_values(row: Sequence, json: Sequence[int]) -> Sequence:
    """The row with the JSON text at each of the `json` positions as the value it stands for (a model's field)."""
    if not json:
        return row
    row = list(row)
    for i in json:
        if row[i] is not None:
            row[i] = orjson.loads(row[i])
    return row


def _jsonb_text(row: Sequence, json: Sequence[int]) -> list:
    """The row with the JSON text at each of the `json` positions in jsonb's binary form."""
    row = list(row)
    for i in json:
        if row[i] is not None:
            row[i] = JSONB_VERSION + row[i].encode()
    return row


def bulk_write(
    objs: Sequence[M],
    *,
    unique_field: str | None = None,
    update_fields: Sequence[str] = (),
    ignore_conflicts: bool = False,
    version_field: str | None = None,
    newer_field: str | None = None,
) -> list[M]:
    """Insert `objs`; with unique_field and update_fields, update the rows that exist (and set each obj's pk).

    With version_field, an existing row is updated only while its version is still the obj's (the one the
    caller read): a row someone changed meanwhile is left as they left it. With newer_field, an existing row is
    updated only when the obj's value of that field is greater (a newer report), decided by the database at the
    write, so of two writers at once the newer value stays. Returns the objs written."""
    if not objs:
        return []
    model = type(objs[0])
    if connection.vendor != "postgresql":
        kwargs = {"ignore_conflicts": True} if ignore_conflicts else {}
        if unique_field:
            kwargs = {
                "update_conflicts": True,
                "unique_fields": [unique_field],
                "update_fields": list(update_fields),
            }
        with transaction.atomic():
            guard = version_field or newer_field
            if guard:
                # SQLite's transactions here are IMMEDIATE (settings): from BEGIN this one holds the write lock, so
                # the values read now are still the row's when bulk_create writes.
                keys = [getattr(obj, unique_field) for obj in objs]
                current = dict(
                    model.objects.select_for_update()
                    .filter(**{f"{unique_field}__in": keys})
                    .values_list(unique_field, guard)
                )
                objs = [
                    o
                    for o in objs
                    if getattr(o, unique_field) not in current
                    or (
                        current[getattr(o, unique_field)] == getattr(o, guard)
                        if version_field
                        else current[getattr(o, unique_field)] < getattr(o, guard)
                    )
                ]
            model.objects.bulk_create(objs, **kwargs)
        return list(objs)
    table = model._meta.db_table
    fields = _columns(model)
    names = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    quote = connection.ops.quote_name
    if unique_field:
        unique = quote(model._meta.get_field(unique_field).column)
        updates = ", ".join(
            f"{quote(model._meta.get_field(name).column)} = EXCLUDED.{quote(model._meta.get_field(name).column)}"
            for name in update_fields
        )
        unchanged = ""
        if version_field:
            version = quote(model._meta.get_field(version_field).column)
            unchanged = f" WHERE {table}.{version} = EXCLUDED.{version}"
        elif newer_field:
            newer = quote(model._meta.get_field(newer_field).column)
            unchanged = f" WHERE {table}.{newer} < EXCLUDED.{newer}"
        # RETURNING lists the rows inserted or updated, not those the WHERE left alone.
        conflict = f"ON CONFLICT ({unique}) DO UPDATE SET {updates}{unchanged} RETURNING id, {unique}"
    else:
        conflict = "ON CONFLICT DO NOTHING" if ignore_conflicts else ""
    row = _row_maker(fields)
    with transaction.atomic(savepoint=len(objs) > FEW_ROWS), connection.cursor() as cursor:
        if len(objs) <= FEW_ROWS:  # one statement
            values = ", ".join([f"({', '.join(['%s'] * len(fields))})"] * len(objs))
            cursor.execute(
                f"INSERT INTO {table} ({names}) VALUES {values} {conflict}",
                [value for obj in objs for value in row(obj)],
            )
        else:
            scratch = _scratch(cursor, model)
            _copy_in(cursor, scratch, fields, map(_row_maker(fields, copy=True), objs))
            cursor.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {scratch} {conflict}")
        if not unique_field:
            return list(objs)
        pks = dict((key, pk) for pk, key in cursor.fetchall())
    written = []
    for obj in objs:
        if getattr(obj, unique_field) in pks:
            obj.pk = pks[getattr(obj, unique_field)]
            written.append(obj)
    return written


def insert_new(objs: Sequence[M], *, unique_field: str, **upsert: Any) -> list[M]:
    """Insert `objs`, none of which has a row yet as far as the caller read, setting their pks; returns them.

    On PostgreSQL the rows are copied into the table itself, with keys taken from its sequence beforehand: a first
    run's devices went through a scratch table and an INSERT ... ON CONFLICT that returned their keys, about a third
    of writing them. If a row appeared meanwhile (the unique field's constraint refuses the copy), nothing of the
    copy stays and the objs go through bulk_write(unique_field=..., **upsert), which handles it."""
    if not objs or connection.vendor != "postgresql" or len(objs) <= FEW_ROWS:
        return bulk_write(objs, unique_field=unique_field, **upsert)
    model = type(objs[0])
    table, key = model._meta.db_table, model._meta.pk
    fields = [key, *_columns(model)]
    row = _row_maker(_columns(model), copy=True)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [table, key.column, len(objs)],
            )
            pks = [pk for (pk,) in cursor.fetchall()]
            _copy_in(cursor, table, fields, ([pk, *row(obj)] for pk, obj in zip(pks, objs, strict=True)))
    except IntegrityError:
        return bulk_write(objs, unique_field=unique_field, **upsert)
    for pk, obj in zip(pks, objs, strict=True):
        obj.pk = pk
    return list(objs)


def update_rows(objs: Sequence[M], fields: Sequence[str]) -> None:
    """Write `fields` of rows that exist (by primary key) from `objs`, in one statement on PostgreSQL.

    Django's bulk_update builds a CASE per field and row, which costs seconds of Python for 1,000 rows; here each
    field goes as one array and UPDATE ... FROM unnest(...) matches the rows. Other databases: bulk_update."""
    if not objs:
        return
    model = type(objs[0])
    if connection.vendor != "postgresql":
        model.objects.bulk_update(objs, list(fields), batch_size=500)
        return
    quote = connection.ops.quote_name
    columns = [model._meta.get_field(name) for name in fields]
    key = model._meta.pk
    selects, params = (
        [f"unnest(%s::{key.db_type(connection)}[]) AS {quote(key.column)}"],
        [[o.pk for o in objs]],
    )
    for field in columns:
        if isinstance(field, models.JSONField):
            selects.append(f"unnest(%s::text[])::jsonb AS {quote(field.column)}")
            params.append([orjson.dumps(getattr(o, field.attname)).decode() for o in objs])
        else:
            selects.append(f"unnest(%s::{field.db_type(connection)}[]) AS {quote(field.column)}")
            params.append([field.get_db_prep_save(getattr(o, field.attname), connection) for o in objs])
    table = quote(model._meta.db_table)
    sets = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in columns)
    sql = (
        f"UPDATE {table} SET {sets} FROM (SELECT {', '.join(selects)}) v "
        f"WHERE {table}.{quote(key.column)} = v.{quote(key.column)}"
    )  # noqa: S608 - names come from the model
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
