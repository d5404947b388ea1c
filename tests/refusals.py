"""A database that refuses to insert some devices (PostgreSQL), for tests of a write that fails mid-run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection


@contextmanager
def devices_refused(condition: str, message: str) -> Iterator[None]:
    """While inside, inserting a device row for which `condition` (SQL on NEW) holds raises `message`."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            CREATE FUNCTION refuse_device() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF {condition} THEN RAISE EXCEPTION '{message}'; END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_device BEFORE INSERT ON devices_device
                FOR EACH ROW EXECUTE FUNCTION refuse_device();
            """
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER refuse_device ON devices_device; DROP FUNCTION refuse_device()")
