"""A first import fills the device table without its secondary indexes, and builds them once after.

The blade reads a page of a tab in any sort order from an index, and searches through others (Device.Meta.indexes
and DEVICE_SEARCH_INDEXES: 32 besides the key and the unique Azure AD device ID), and PostgreSQL keeps every one of
them up row by row: at 100,000 devices, inserting the rows took 10.1 s in psql with them and 1.0 s without, and
building them over the filled table 4.6 s, about half that in two connections at once. A first run's evaluation
waited on those inserts for most of its time. So when a run is about to add many devices to an empty table
(`first_import`), it drops those (`deferrable`), writes its chunks, and builds them again (`build`) before the run
ends. (Until round 2's fifteenth session the six search indexes, made by a migration, were left up, and doubled
the time of copying a first run's rows in.)

PostgreSQL only, outside a transaction (a test's would hold the drop until it ends). Meanwhile pages still work,
reading a table that is still filling without those indexes; admin actions that write a device wait for a build
to end (CREATE INDEX blocks writes to the table, not reads). A run that dies between the two leaves indexes
missing: every run starts by building what is missing (`build_missing`).

The tenant copy does the same on its first reading (`empty`): the reading's thread copies the pages into the copy
without its declared indexes, and once the reading has committed they are built (`start_building`) while the run
stages its candidates (devices.discovery.reading.read_tenant). Its 303,993 rows at 100,000 devices took 6.4 s to
copy in psql with the six, 3.2 s without them and 1.6 s to build them after; the copy's thread held the streams
back for most of a first reading. (Until round 2's seventeenth session they were built in the reading's own
transaction, one after the other, with nothing else going on.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django.conf import settings
from django.db import connection, models

from ..models import DEVICE_SEARCH_INDEXES, Device
from .writer import ConnectionThread

# Connections building indexes at once: the machines this runs on have at least two cores, and a first import's
# evaluation has ended (this thread only waits).
BUILDERS = 2


def available() -> bool:
    return ConnectionThread.available()


def first_import(model: type[models.Model], rows: int) -> bool:
    """Whether a run about to write `rows` new rows into `model`'s table should drop its deferrable indexes first:
    the table is empty, the rows are many (AUTOPATCH_DEFER_INDEXES_FROM), and the database is PostgreSQL."""
    return rows >= settings.AUTOPATCH_DEFER_INDEXES_FROM and empty(model)


def empty(model: type[models.Model]) -> bool:
    """Whether `model`'s table holds no row, on PostgreSQL outside a transaction: a reading about to fill it
    drops its declared indexes first (the tenant copy; how many rows come is known only once they are read, and
    building six indexes over a few rows takes milliseconds)."""
    return available() and not model.objects.exists()


def deferrable(model: type[models.Model]) -> list[models.Index]:
    """The indexes of `model`'s table a first import drops and builds: those it declares (Meta.indexes), and the
    device table's search indexes (DEVICE_SEARCH_INDEXES, made by a migration)."""
    return [*model._meta.indexes, *(DEVICE_SEARCH_INDEXES if model is Device else ())]


def missing(model: type[models.Model]) -> list[models.Index]:
    """The deferrable indexes of `model` that its table lacks."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = %s",
            [model._meta.db_table],
        )
        present = {name for (name,) in cursor.fetchall()}
    return [index for index in deferrable(model) if index.name not in present]


def drop(model: type[models.Model]) -> list[models.Index]:
    """Drop `model`'s deferrable indexes; returns them, for `build`."""
    indexes = deferrable(model)
    with connection.schema_editor(atomic=False) as editor:
        for index in indexes:
            editor.remove_index(model, index)  # DROP INDEX IF EXISTS
    return indexes


def build(model: type[models.Model], indexes: Sequence[models.Index]) -> None:
    """Build `indexes` of `model`, in BUILDERS connections at once where it can (else in this one), the widest
    first so that the connections end together."""
    start_building(model, indexes)()


def start_building(model: type[models.Model], indexes: Sequence[models.Index]) -> Callable[[], None]:
    """Start `build` in its own connections, so that this one can go on meanwhile with what does not write the
    table (CREATE INDEX holds writers back, not readers); returns the wait for the build to end, which raises what
    the build raised. Without those connections, the build is done before this returns."""
    if not indexes:
        return lambda: None
    widest_first = sorted(indexes, key=lambda index: -(len(index.fields) + len(index.include)))
    if not available():
        add(model, widest_first)
        return lambda: None
    builders = [ConnectionThread("discovery-indexes") for _ in range(BUILDERS)]
    shares = [widest_first[n :: len(builders)] for n in range(len(builders))]
    building = [b.submit(add, model, share) for b, share in zip(builders, shares, strict=True)]

    def wait() -> None:
        try:
            for done in building:
                done.result()
        finally:
            for builder in builders:
                builder.close()

    return wait


def build_missing(model: type[models.Model]) -> None:
    """Build the deferrable indexes a run that died during a first import left missing (PostgreSQL)."""
    if connection.vendor == "postgresql":
        build(model, missing(model))


def add(model: type[models.Model], indexes: Sequence[models.Index]) -> None:
    """Build `indexes` of `model` in this connection, in its transaction if one is open."""
    with connection.schema_editor(atomic=False) as editor:
        for index in indexes:
            editor.add_index(model, index)
