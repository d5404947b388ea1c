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

from collections import deque
from collections.abc import Callable, Sequence

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.db import connection, models

from ..models import DEVICE_SEARCH_INDEXES, Device
from .writer import ConnectionThread, commits_waiting_for_disk

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
    """Build `indexes` of `model`, in BUILDERS connections at once where it can (else in this one), the costliest
    first so that the connections end together."""
    start_building(model, indexes)()


def start_building(model: type[models.Model], indexes: Sequence[models.Index]) -> Callable[[], None]:
    """Start `build` in its own connections, so that this one can go on meanwhile with what does not write the
    table (CREATE INDEX holds writers back, not readers); returns the wait for the build to end, which raises what
    the build raised. Without those connections, the build is done before this returns."""
    if not indexes:
        return lambda: None
    costliest_first = sorted(indexes, key=build_cost, reverse=True)
    if not available():
        add(model, costliest_first)
        return lambda: None
    # Each builder takes the next index as it ends one: given out in turns up front, one builder went on alone
    # for the last 0.5-0.7 s of a first import's builds at 100,000 devices.
    waiting = deque(costliest_first)
    builders = [ConnectionThread("discovery-indexes") for _ in range(BUILDERS)]
    building = [builder.submit(add_alone, model, waiting) for builder in builders]

    def wait() -> None:
        try:
            for done in building:
                done.result()
        finally:
            for builder in builders:
                builder.close()

    return wait


def build_cost(index: models.Index) -> tuple[bool, int]:
    """What building `index` costs, roughly: a trigram index took twice a plain one's time, and more columns more."""
    return isinstance(index, GinIndex), len(index.fields) + len(index.include)


def build_missing(model: type[models.Model]) -> None:
    """Build the deferrable indexes a run that died during a first import left missing (PostgreSQL)."""
    if connection.vendor == "postgresql":
        build(model, missing(model))


def add_alone(model: type[models.Model], waiting: deque[models.Index]) -> None:
    """`add` the indexes `waiting`, one at a time until none is left, in a builder's connection and without
    PostgreSQL's parallel workers: the builders keep the cores busy between them. In psql, the 32 device indexes
    at 100,000 devices took 2.61-2.68 s in two connections without workers, 2.94-3.01 s with up to two each
    (max_parallel_maintenance_workers' default), whose start and merge cost more than they saved."""
    with connection.cursor() as cursor:
        cursor.execute("SET max_parallel_maintenance_workers = 0")  # the connection closes with the builder
    # Each build's commit waits for its index (written whole to the WAL) to reach the disk: the run's VACUUMs after
    # the builds wait for everything written so far (reading.commits_on_disk), and waited for the WAL writer to
    # flush the builds' last writes (0.03-0.18 s at 100,000 devices; 169 MB of indexes).
    with commits_waiting_for_disk():
        while True:
            try:
                index = waiting.popleft()  # atomic: no two builders take the same index
            except IndexError:
                return
            add(model, [index])


def add(model: type[models.Model], indexes: Sequence[models.Index]) -> None:
    """Build `indexes` of `model` in this connection, in its transaction if one is open."""
    with connection.schema_editor(atomic=False) as editor:
        for index in indexes:
            editor.add_index(model, index)
