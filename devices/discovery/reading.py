"""Reading the tenant: delta rounds and Intune reads, run at once, staged, then applied to the tenant copy.

Three streams run concurrently (each in a thread that only talks to Graph; this thread writes every row):
- devices: `/devices/delta` from the last delta link (a full round without one, or when Graph says it expired);
- groups: the registration group's `/groups/delta` round, then one per group nested in it (one link each);
- managed devices: Intune has no delta, so those synced since the last read (less a margin), and every
  device once a day (AUTOPATCH_INTUNE_FULL_READ_HOURS) so that deleted ones are seen.
What a run reads is staged first and applied to the tenant copy (TenantObject) in one transaction once every
stream has completed: a run changes nothing from a read that did not complete. A nested group that cannot be
read keeps its members as they were (the run ends Partial).
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Model
from django.utils import timezone

from autopatch_portal.tenant import delta, directory
from autopatch_portal.tenant.connection import TenantConnection
from autopatch_portal.tenant.directory import DEVICE_TYPE, GROUP_TYPE
from autopatch_portal.tenant.graph import GraphClient, GraphError, dumps

from ..bulk import copy_rows
from ..models import WITH_BLANKS, DeltaLink, Device, DiscoveryRun, ObjectKind, StagedObject, TenantObject
from . import indexes, records
from .state import RunState
from .writer import ConnectionThread, meanwhile

DEVICES, MANAGED = "devices", "managed"
# Rows a run writes to a table (staged from Graph into the tenant copy, devices evaluated), past which it
# refreshes that table's statistics (analyze): fewer leave them true.
ANALYZE_AFTER = 1000
# Pages handed to the copy's thread and not yet written, at most, and pages read and not yet taken. A first run at
# 100,000 devices added 75-78 MB of resident memory with four (goal: 80 MB), 69-75 MB with two, in the same time
# (bench/README.md).
PAGES_IN_FLIGHT = 2
STAGED_COLUMNS = (
    "kind",
    "group_id",
    "object_id",
    "device_id",
    "display_name",
    "serial_number",
    "extra",
    "data",
    "removed",
)


def group_link(group_id: str) -> str:
    return f"group:{group_id}"


def clear_staging() -> None:
    """Runs never overlap, so every staged row is this run's or a dead run's: TRUNCATE leaves no dead rows."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {StagedObject._meta.db_table}")
    else:  # (TRUNCATE inside a transaction would trip over deferred foreign-key checks)
        StagedObject.objects.all().delete()


def stage(run: DiscoveryRun, rows: list[tuple], ignore_conflicts: bool = False) -> None:
    """Insert one page of staging rows (values for STAGED_COLUMNS)."""
    copy_rows(
        StagedObject,
        ("run_id", *STAGED_COLUMNS),
        [(run.pk, *row) for row in rows],
        ignore_conflicts=ignore_conflicts,
    )


# -- the streams, each in its own thread ---------------------------------------------------------


@dataclass
class Completed:
    """A round or read that completed: where the next one starts, and whether it listed everything."""

    scope: str  # DEVICES, MANAGED or group_link(id)
    full: bool
    link: str = ""


@dataclass
class Plan:
    """What this run reads: the registration group, the groups nested in it so far, and each stream's start."""

    group_id: str
    nested: set[str]
    links: dict[str, DeltaLink]
    managed_since: Any  # a datetime, or None for a full read
    blank_managed: list[dict] = field(default_factory=list)  # in the copy with blanks not looked up yet

    def link(self, scope: str) -> str:
        found = self.links.get(scope)
        return found.link if found else ""


Emit = Callable[[tuple], None]


def follow(
    scopes: list[str],
    start: Callable[[str], delta.DeltaRound],
    link: str,
    emit: Emit,
    seen: Callable[[list[dict]], None] = lambda page: None,
    parts: Callable[[list[dict]], dict[str, list[dict]]] | None = None,
) -> delta.DeltaRound:
    """One delta round from `link` (a full round without one) for `scopes`: one scope, or several groups sharing
    the round, among which `parts` splits each page. A link Graph no longer knows starts the round over."""

    def read(round_: delta.DeltaRound) -> delta.DeltaRound:
        for page in round_:
            for scope, part in (parts(page) if parts else {scopes[0]: page}).items():
                emit(("page", scope, part, round_.full))
            seen(page)
        return round_

    try:
        round_ = read(start(link))
    except delta.DeltaExpired:
        for scope in scopes:
            emit(("restart", scope))
        round_ = read(start(""))
    for scope in scopes:
        emit(("done", Completed(scope, round_.full, round_.delta_link)))
    return round_


def device_stream(graph: GraphClient, plan: Plan, emit: Emit) -> None:
    follow([DEVICES], lambda link: delta.device_changes(graph, link), plan.link(DEVICES), emit)


def group_round(
    graph: GraphClient, plan: Plan, group_id: str, emit: Emit, link: str | None = None
) -> tuple[list[dict], bool]:
    """One group's round (from `link`, else from the one kept for it); returns its member changes of group type
    (they say which groups are nested) and whether the round listed the whole membership."""
    scope = group_link(group_id)
    groups: list[dict] = []

    def seen(page: list[dict]) -> None:
        for item in page:
            groups.extend(
                m
                for m in item.get("members@delta") or ()
                if isinstance(m, dict) and m.get("@odata.type") == GROUP_TYPE
            )

    def start(link: str) -> delta.DeltaRound:
        groups.clear()  # a round that starts over lists every member again
        return delta.group_changes(graph, [group_id], link)

    round_ = follow([scope], start, plan.link(scope) if link is None else link, emit, seen)
    return groups, round_.full


def shared_round(graph: GraphClient, plan: Plan, group_ids: list[str], emit: Emit) -> None:
    """The member changes of up to 50 nested groups in one round. It goes on from the link they share; where they
    hold different links (a group nested since, or none yet), it lists their whole memberships. Each group's
    part is staged and completed under its own scope, with the round's link."""
    scopes = {group_id: group_link(group_id) for group_id in group_ids}
    links = {plan.link(scope) for scope in scopes.values()}

    def parts(page: list[dict]) -> dict[str, list[dict]]:
        split: dict[str, list[dict]] = {}
        for item in page:
            if item.get("id") in scopes:  # a link kept from before may name a group no longer nested
                split.setdefault(scopes[item["id"]], []).append(item)
        return split

    follow(
        list(scopes.values()),
        lambda link: delta.group_changes(graph, group_ids, link),
        links.pop() if len(links) == 1 else "",
        emit,
        parts=parts,
    )


def nested_rounds(graph: GraphClient, plan: Plan, nested: list[str], emit: Emit) -> None:
    """The nested groups, 50 to a shared round; a shared round that fails is dropped and each of its groups is read
    in full on its own, so that one group that cannot be read leaves only its own members as they were."""
    for start in range(0, len(nested), delta.MAX_GROUPS_FILTERED):
        chunk = nested[start : start + delta.MAX_GROUPS_FILTERED]
        try:
            shared_round(graph, plan, chunk, emit)
        except GraphError:
            for group_id in chunk:
                emit(("restart", group_link(group_id)))
                try:
                    group_round(graph, plan, group_id, emit, link="")
                except GraphError as exc:
                    emit(("unreadable", group_id, exc))


def group_stream(graph: GraphClient, plan: Plan, emit: Emit) -> None:
    """The registration group first (its changes say which groups are nested now), then the nested groups."""
    changes, full = group_round(graph, plan, plan.group_id, emit)
    nested = set() if full else set(plan.nested)
    for member in changes:
        if member.get("@removed"):
            nested.discard(member["id"])
        elif member.get("id"):
            nested.add(member["id"])
    emit(("nested", nested))
    nested_rounds(graph, plan, sorted(nested), emit)


def managed_stream(graph: GraphClient, plan: Plan, emit: Emit) -> None:
    """Intune's changes; a listed device with list blanks is looked up on its own (by JSON batching), and so
    are the devices whose blanks an earlier run could not look up."""
    pages = directory.managed_device_pages(graph, plan.managed_since)
    if plan.managed_since is not None and plan.blank_managed:
        pages = itertools.chain(pages, [plan.blank_managed])
    for page in pages:
        page, unresolved = directory.fill_list_blanks(graph, page, workers=4)
        emit(("page", MANAGED, page, plan.managed_since is None))
        if unresolved:
            emit(("unresolved", unresolved))
    emit(("done", Completed(MANAGED, plan.managed_since is None)))


_END = object()


def concurrently(streams: dict[str, Callable[[Emit], None]]) -> Iterator[tuple]:
    """The messages of every stream as they come; the first stream to fail stops the others and raises here.

    Pages wait in a short queue, so a slow consumer holds back the readers instead of growing memory (two pages, as
    in the copy's thread: PAGES_IN_FLIGHT)."""
    messages: queue.Queue = queue.Queue(maxsize=PAGES_IN_FLIGHT)
    stop = threading.Event()

    def emit(message: tuple) -> None:
        while not stop.is_set():
            try:
                messages.put(message, timeout=0.1)
                return
            except queue.Full:
                continue
        raise SystemExit  # the run stopped: end this reader quietly

    def work(name: str, stream: Callable[[Emit], None]) -> None:
        try:
            stream(emit)
            emit(("finished", name, _END))
        except SystemExit:
            return  # the run stopped (another stream failed): nothing to hand over
        except BaseException as exc:  # handed to the consuming thread, which raises it
            try:
                emit(("failed", name, exc))
            except SystemExit:
                return

    threads = [
        threading.Thread(target=work, args=item, name=f"discovery-{item[0]}", daemon=True)
        for item in streams.items()
    ]
    for thread in threads:
        thread.start()
    running = len(threads)
    try:
        while running:
            message = messages.get()
            if message[0] == "finished":
                running -= 1
            elif message[0] == "failed":
                raise message[2]
            else:
                yield message
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)


# -- staging what the streams read -----------------------------------------------------------------


@dataclass
class Reading:
    """What the streams reported, apart from the staged rows."""

    completed: dict[str, Completed] = field(default_factory=dict)
    nested: set[str] = field(default_factory=set)
    read_devices: int = 0
    read_managed: int = 0


def stage_page(state: RunState, scope: str, page: list[dict]) -> int:
    """Stage one page of a stream, each object checked first (records.accept: a bad one is named on the run and
    skipped); returns how many objects the page held."""
    stage(state.run, page_rows(state, scope, page))
    return len(page)


def page_rows(state: RunState, scope: str, page: list[dict]) -> list[tuple]:
    """The staging rows (values for STAGED_COLUMNS) of one page of a stream, each object checked first
    (records.accept: a bad one is named on the run and skipped)."""
    if scope == DEVICES:
        return [
            (
                ObjectKind.DEVICE,
                "",
                d.get("id") or "",
                d.get("deviceId") or "",
                (d.get("displayName") or "")[:256],
                "",
                "",
                "" if d.get("@removed") else dumps(d),
                bool(d.get("@removed")),
            )
            for d in records.accept(page, records.DEVICE, state)
            if d.get("id")
        ]
    if scope == MANAGED:
        return [
            (
                ObjectKind.MANAGED,
                "",
                m.get("id") or "",
                m["azureADDeviceId"],
                "",
                (m.get("serialNumber") or "").strip()[:128],
                (m.get("lastSyncDateTime") or "")[:256],
                dumps(m),
                False,
            )
            for m in records.accept(page, records.MANAGED, state)
            if m.get("azureADDeviceId")
        ]
    rows: list[tuple] = []
    for group in page:
        group_id = str(group.get("id") or "")[:64]
        rows.append(
            (
                ObjectKind.GROUP,
                "",
                group_id,
                "",
                str(group.get("displayName") or "")[:256],
                "",
                "",
                "",
                bool(group.get("@removed")),
            )
        )
        changes = [m for m in group.get("members@delta") or () if isinstance(m, dict) and m.get("id")]
        for member in records.accept(changes, records.MEMBER, state):
            rows.append(
                (
                    ObjectKind.MEMBER,
                    group_id,
                    member["id"],
                    "",
                    "",
                    "",
                    (member.get("@odata.type") or "")[:256],
                    "",
                    bool(member.get("@removed")),
                )
            )
    return rows


def forget_staged(run: DiscoveryRun, scope: str) -> None:
    """A round that starts over (its link expired) drops what it staged so far."""
    staged = StagedObject.objects.filter(run=run)
    if scope == DEVICES:
        staged.filter(kind=ObjectKind.DEVICE).delete()
    else:
        group_id = scope.split(":", 1)[1]
        staged.filter(kind=ObjectKind.MEMBER, group_id=group_id).delete()
        staged.filter(kind=ObjectKind.GROUP, object_id=group_id).delete()


def plan_reading(tenant: TenantConnection, state: RunState) -> Plan:
    group_id = directory.registration_group_id(tenant.graph, tenant.registration_group_id)
    links = {link.name: link for link in DeltaLink.objects.all()}
    nested = set(
        TenantObject.objects.filter(kind=ObjectKind.MEMBER, group_id=group_id, extra=GROUP_TYPE).values_list(
            "object_id", flat=True
        )
    )
    managed = links.get(MANAGED)
    every = timedelta(hours=settings.AUTOPATCH_INTUNE_FULL_READ_HOURS)
    since = None
    if managed and managed.read_at and managed.full_read_at and state.now - managed.full_read_at < every:
        since = managed.read_at - timedelta(minutes=settings.AUTOPATCH_INTUNE_SYNC_MARGIN_MINUTES)
    blank = TenantObject.objects.filter(WITH_BLANKS)
    return Plan(
        group_id, nested, links, since, [orjson.loads(data) for data in blank.values_list("data", flat=True)]
    )


def stage_as_read(
    state: RunState, reading: Reading, streams: dict[str, Callable[[Emit], None]], applier: CopyApplier
) -> None:
    """Stage what the streams read as it comes, and hand each scope whose stream completed to the applier."""
    run = state.run
    for message in concurrently(streams):
        kind = message[0]
        if kind == "page":
            scope, page, full = message[1:]
            rows = page_rows(state, scope, page)
            rows = applier.copy_page(scope, rows) if full else rows
            if rows:
                stage(run, rows)
            if scope == DEVICES:
                reading.read_devices += len(page)
            elif scope == MANAGED:
                reading.read_managed += len(page)
            state.progress(
                f"Read {reading.read_devices} Azure AD devices and {reading.read_managed} managed devices"
            )
        elif kind == "restart":
            forget_staged(run, message[1])  # (a full round, whose pages are copied, never starts over)
        elif kind == "done":
            reading.completed[message[1].scope] = message[1]
            applier.scope_completed(message[1])
        elif kind == "unresolved":
            for managed_id, problem in list(message[1].items())[:20]:
                state.errors.append(
                    {"stage": "managed device details", "message": f"Managed device {managed_id}: {problem}"}
                )
        elif kind == "nested":
            reading.nested = message[1]
        elif kind == "unreadable":
            group_id, exc = message[1], message[2]
            forget_staged(run, group_link(group_id))
            state.unreadable_groups.append(group_id)
            name = (
                TenantObject.objects.filter(kind=ObjectKind.GROUP, object_id=group_id)
                .values_list("display_name", flat=True)
                .first()
                or group_id
            )
            state.errors.append({"stage": f"nested group {name}", "message": str(exc)})


def read_tenant(tenant: TenantConnection, state: RunState) -> str:
    """Read every stream into staging, then apply it to the tenant copy; returns the registration group's ID."""
    run, graph = state.run, tenant.graph
    plan = plan_reading(tenant, state)
    reading = Reading()
    streams = {
        DEVICES: lambda emit: device_stream(graph, plan, emit),
        "groups": lambda emit: group_stream(graph, plan, emit),
        MANAGED: lambda emit: managed_stream(graph, plan, emit),
    }
    state.progress("Reading the registration group, devices and managed devices")
    indexes.build_missing(TenantObject)  # a first reading that failed left them missing
    deferred = indexes.drop(TenantObject) if indexes.empty(TenantObject) else []
    applier = CopyApplier(run, state.now, copied={DEVICES, MANAGED, group_link(plan.group_id)})
    try:
        stage_as_read(state, reading, streams, applier)
        applier.finish({plan.group_id, *reading.nested})
    finally:
        applier.close()
        if not applier.committed:
            indexes.build(TenantObject, deferred)  # over the copy as it was: empty
    state.full_read = any(completed.full for completed in reading.completed.values())
    if state.full_read or StagedObject.objects.filter(run=run).count() >= ANALYZE_AFTER:
        # Fresh rows have no statistics: without them the joins below are planned badly. A few changed rows
        # leave the statistics true (an hourly run's ANALYZE of 300,000 rows took 0.26 s of its 6.8 s). After a
        # full read the copy is vacuumed too, at the end of the run (`vacuumed_meanwhile`).
        analyze(TenantObject)
    # A first reading's indexes are built while the candidates are staged, which read the copy by its key: built
    # in the reading's transaction, one after the other, they held a first run at 100,000 devices for 1.8 s with
    # nothing else going on. Pages reading the copy meanwhile read it without them, as they read the device table
    # during a first import (indexes).
    built = indexes.start_building(TenantObject, deferred)
    try:
        stage_candidates(run, plan.group_id)
        analyze(StagedObject)
    finally:
        built()
    if plan.managed_since is not None and unseen_in_intune(run):
        # A device new to the portal whose Intune record the copy lacks: Intune's list cannot be asked for
        # one device, and a record that has not synced since the last read is not among the changes.
        state.progress("Reading every managed device")
        StagedObject.objects.filter(run=run, kind=ObjectKind.MANAGED).delete()
        for page in directory.managed_device_pages(graph):
            reading.read_managed += stage_page(state, MANAGED, page)
        state.full_read = True
        with transaction.atomic():
            apply_scope(run, ObjectKind.MANAGED, full=True)
            DeltaLink.objects.filter(name=MANAGED).update(full_read_at=state.now)
        analyze(TenantObject)
    state.counts["read_devices"], state.counts["read_managed"] = reading.read_devices, reading.read_managed
    return plan.group_id


def analyze(*models, vacuum: bool = False) -> None:
    """Fresh statistics for tables a run just filled (PostgreSQL); with vacuum, also their visibility map, so that
    counts and index scans need not visit every row until autovacuum comes by. VACUUM cannot run inside a
    transaction (a test's), where the statistics alone are refreshed."""
    if connection.vendor == "postgresql":
        vacuum = vacuum and not connection.in_atomic_block
        command = "VACUUM (ANALYZE)" if vacuum else "ANALYZE"
        with connection.cursor() as cursor:
            for model in models:
                if vacuum:
                    commits_on_disk(cursor)
                cursor.execute(f"{command} {model._meta.db_table}")


@contextmanager
def vacuumed_meanwhile(model: type[Model], wanted: bool, statistics: bool = False) -> Iterator[None]:
    """VACUUM `model`'s table in a connection of its own while the block runs (`wanted`, and PostgreSQL outside a
    transaction). After a full read the tenant copy's visibility map lets the next runs stage their candidates from
    its key alone (an index-only scan needs it, and autovacuum would set it only later); vacuumed before the
    evaluation, it held a first run at 100,000 devices for 0.7 s with nothing else going on, and now goes on beside
    the device tables' VACUUM (evaluation.upkeep). With `statistics`, `VACUUM (ANALYZE)`."""
    if not (wanted and ConnectionThread.available()):  # VACUUM cannot run inside a transaction (a test's)
        yield
        return
    with meanwhile("discovery-vacuum", vacuum, model, statistics):
        yield


def vacuum(model: type[Model], statistics: bool = False) -> None:
    with connection.cursor() as cursor:
        commits_on_disk(cursor)
        cursor.execute(f"VACUUM {'(ANALYZE) ' if statistics else ''}{model._meta.db_table}")


def commits_on_disk(cursor, longest: float = 2.0) -> None:
    """Wait (at most `longest` seconds) until everything committed so far is on disk. A run commits without
    waiting for the disk (writer.RUN_SETTINGS, the VACUUM (ANALYZE) of the table before too), and VACUUM marks a
    page all-visible only once its rows' commits are there: right after a run's last writes it marked none, and
    every index-only scan of the table read the rows until autovacuum came by. PostgreSQL's WAL writer flushes
    them within a few wal_writer_delay (200 ms by default)."""
    try:
        cursor.execute("SELECT pg_current_wal_insert_lsn()")
    except DatabaseError:
        return  # a server that does not tell (a managed service may revoke it): VACUUM all the same
    written = cursor.fetchone()[0]
    deadline = time.monotonic() + longest
    while time.monotonic() < deadline:
        cursor.execute("SELECT pg_current_wal_flush_lsn() >= %s::pg_lsn", [written])
        if cursor.fetchone()[0]:
            return
        time.sleep(0.02)


# -- applying a completed reading to the tenant copy ------------------------------------------------


def _sql(text: str, **parts: str) -> str:
    return text.format(copy=TenantObject._meta.db_table, staged=StagedObject._meta.db_table, **parts)


def apply_scope(run: DiscoveryRun, kind: str, full: bool, group_id: str = "") -> None:
    """Bring one scope of the tenant copy up to date: the latest staged row of each object replaces it (or
    removes it, for @removed); a full read replaces the whole scope. Members are scoped by their group; other
    objects have none (""), which every condition names so that the (kind, group_id, object_id) key serves it
    (without it, deleting 2,000 changed managed devices scanned 100,000 rows per row: 21 s). Rows go in in the
    key's order, which PostgreSQL then appends to the key's index rather than inserting them all over it (the
    copy's 303,993 rows of a first run at 100,000 devices in psql: 3.9 s against 5.2 s)."""
    scope = [str(kind), group_id]
    latest = _sql(
        "SELECT MAX(id) FROM {staged} WHERE run_id = %s AND kind = %s AND group_id = %s GROUP BY object_id"
    )
    with connection.cursor() as cursor:
        if full:
            cursor.execute(_sql("DELETE FROM {copy} WHERE kind = %s AND group_id = %s"), scope)
        else:
            cursor.execute(
                _sql(
                    "DELETE FROM {copy} WHERE kind = %s AND group_id = %s AND object_id IN "
                    "(SELECT object_id FROM {staged} WHERE run_id = %s AND kind = %s AND group_id = %s)"
                ),
                [*scope, run.pk, *scope],
            )
        cursor.execute(
            _sql(
                "INSERT INTO {copy} (kind, group_id, object_id, device_id, display_name, serial_number, extra, data, "
                "changed_at) SELECT kind, group_id, object_id, device_id, display_name, serial_number, extra, data, %s "
                "FROM {staged} WHERE id IN (" + latest + ") AND removed = %s ORDER BY object_id"
            ),
            [timezone.now(), run.pk, *scope, False],
        )


def scope_key(scope: str) -> tuple[str, str]:
    """The kind and group ID of a scope's objects in the tenant copy."""
    if scope == DEVICES:
        return ObjectKind.DEVICE, ""
    if scope == MANAGED:
        return ObjectKind.MANAGED, ""
    return ObjectKind.MEMBER, scope.split(":", 1)[1]


def apply_completed(run: DiscoveryRun, completed: Completed, now) -> None:
    """One completed scope into the tenant copy, and where its next read starts (in the caller's transaction)."""
    kind, group_id = scope_key(completed.scope)
    apply_scope(run, kind, completed.full, group_id)
    record_link(completed, now)


def record_link(completed: Completed, now) -> None:
    """Where a completed scope's next read starts."""
    DeltaLink.objects.update_or_create(
        name=completed.scope,
        defaults={
            "link": completed.link,
            "read_at": now,
            **({"full_read_at": now} if completed.full else {}),
        },
    )


def apply_groups(run: DiscoveryRun, tracked: set[str]) -> None:
    """The names of the groups read; groups no longer nested in the registration group are no longer followed."""
    apply_scope(run, ObjectKind.GROUP, full=False)
    TenantObject.objects.filter(kind=ObjectKind.MEMBER).exclude(group_id__in=tracked).delete()
    TenantObject.objects.filter(kind=ObjectKind.GROUP).exclude(object_id__in=tracked).delete()
    DeltaLink.objects.filter(name__startswith="group:").exclude(
        name__in=[group_link(g) for g in tracked]
    ).delete()


class CopyApplier:
    """Applies a reading to the tenant copy in one transaction that commits only once every stream has completed
    (`finish`): a run changes nothing from a read that did not complete.

    Where it can (writer.ConnectionThread), a thread with its own connection applies each scope as soon as its
    stream completes, while the other streams are still read: a first run at 100,000 devices spent 12 s inserting
    the copy's 300,000 rows after the last stream, with Python idle. Elsewhere every scope is applied in `finish`,
    in this thread. A reading that fails (`close` without `finish`) is rolled back: its connection is closed."""

    def __init__(self, run: DiscoveryRun, now, copied: Collection[str] = ()):
        self.run, self.now = run, now
        self.committed = False
        self.thread = ConnectionThread("discovery-copy") if ConnectionThread.available() else None
        self.completed: list[Completed] = []  # without a thread: applied in `finish`
        self.applied: list[Future] = []  # with one: being applied there
        self.begun = False
        self.cleared: set[str] = set()  # in the thread: scopes emptied before their first copied page
        self.analyzed = False  # in the thread: the staging's statistics taken
        self.copied = copied  # scopes whose pages of a full read `copy_page` takes
        self.copying: set[str] = set()  # those it took pages of
        self.pages: deque[Future] = deque()

    def copy_page(self, scope: str, rows: list[tuple]) -> list[tuple]:
        """Take the rows of a page of a full read of `scope` straight into the copy, in the reading's transaction;
        returns those left to stage (all of them without a thread, or for a scope not in `copied`).

        Staged and then inserted from staging, a first run's 300,000 rows at 100,000 devices were written twice,
        and the copy's inserts went on for 6 s after the last stream had been read. The three large scopes (devices,
        managed devices, the registration group's members) are copied as they are read instead; a nested group's
        members are still staged, so that a group that cannot be read leaves its members as they were."""
        if self.thread is None or scope not in self.copied:
            return rows
        kind, group_id = scope_key(scope)
        own = [row for row in rows if row[0] == kind and row[1] == group_id]
        self.copying.add(scope)
        self.pages.append(self.thread.submit(self._copy, scope, own))
        # Memory stays bounded when the database is slower than Graph.
        while len(self.pages) > PAGES_IN_FLIGHT:
            self.pages.popleft().result()
        return [row for row in rows if not (row[0] == kind and row[1] == group_id)]

    def scope_completed(self, completed: Completed) -> None:
        if self.thread is None:
            self.completed.append(completed)
        else:
            self.applied.append(self.thread.submit(self._apply, completed))

    def finish(self, tracked: set[str]) -> None:
        while self.pages:
            self.pages.popleft().result()  # a page that failed fails the run here
        if self.thread is None:
            analyze(StagedObject)  # TRUNCATE kept the last run's statistics, which describe other rows
            with transaction.atomic():
                for completed in self.completed:
                    apply_completed(self.run, completed, self.now)
                apply_groups(self.run, tracked)
            self.committed = True
            return
        for applied in self.applied:
            applied.result()  # a scope that failed fails the run here
        self.thread.submit(self._commit, tracked).result()
        self.committed = True

    def close(self) -> None:
        """End the thread: closing its connection rolls back a transaction that `finish` did not commit."""
        if self.thread is not None:
            self.thread.close()
            self.thread = None

    # In the thread:

    def _begin(self) -> None:
        if not self.begun:
            transaction.set_autocommit(False)
            self.begun = True

    def _staged_statistics(self) -> None:
        """Once, before the first scope applied from staging, as the staging then stands: TRUNCATE kept the last
        run's statistics, which describe other rows. (Again before each scope cost 4 s of a first run at 100,000
        devices. Taken at the first copied page instead, they said the staging was empty, and inserting a nested
        group's members from it had not ended after 5 minutes.) In the reading's transaction, which sees them."""
        if not self.analyzed:
            analyze(StagedObject)
            self.analyzed = True

    def _apply(self, completed: Completed) -> None:
        self._begin()
        if completed.scope in self.copying:
            record_link(completed, self.now)  # its pages are in the copy already
        else:
            self._staged_statistics()
            apply_completed(self.run, completed, self.now)

    def _clear(self, scope: str) -> None:
        self._begin()
        with connection.cursor() as cursor:
            cursor.execute(
                _sql("DELETE FROM {copy} WHERE kind = %s AND group_id = %s"), list(scope_key(scope))
            )

    def _copy(self, scope: str, rows: list[tuple]) -> None:
        """One page of a full read: the scope is emptied before its first page; an object listed twice (Graph may
        list one again in a round) keeps its last listing, and one listed as removed goes."""
        self._begin()
        if scope not in self.cleared:
            self._clear(scope)
            self.cleared.add(scope)
        latest = {row[2]: row for row in rows}  # object ID: the page's last listing
        kind, group_id = scope_key(scope)
        removed = [object_id for object_id, row in latest.items() if row[-1]]
        now = timezone.now()
        live = [(*row[:-1], now) for row in latest.values() if not row[-1]]
        with connection.cursor() as cursor:
            key = _sql("DELETE FROM {copy} WHERE kind = %s AND group_id = %s AND object_id = ANY(%s)")
            if removed:
                cursor.execute(key, [kind, group_id, removed])
            try:  # copy_rows takes a savepoint: the reading's transaction goes on
                copy_rows(TenantObject, COPY_COLUMNS, live)
            except IntegrityError:  # listed on an earlier page too: this listing is the later one
                cursor.execute(key, [kind, group_id, [row[2] for row in live]])
                copy_rows(TenantObject, COPY_COLUMNS, live)

    def _commit(self, tracked: set[str]) -> None:
        self._begin()
        self._staged_statistics()
        apply_groups(self.run, tracked)
        transaction.commit()
        transaction.set_autocommit(True)
        self.begun = False


# The tenant copy's columns that a copied page's rows hold.
COPY_COLUMNS = (*STAGED_COLUMNS[:-1], "changed_at")


def unseen_in_intune(run: DiscoveryRun) -> bool:
    """Whether a candidate the portal has never evaluated has no Intune record in the copy."""
    known = Device.objects.values("azure_ad_device_id")
    managed = TenantObject.objects.filter(kind=ObjectKind.MANAGED).values("device_id")
    return (
        StagedObject.objects.filter(run=run, kind=ObjectKind.CANDIDATE)
        .exclude(device_id__in=known)
        .exclude(device_id__in=managed)
        .exists()
    )


def stage_candidates(run: DiscoveryRun, group_id: str) -> None:
    """The devices this run evaluates: device members of the registration group ("direct") and of the groups
    nested in it (the group's name), each with the Entra device ID of its device record. Direct wins: the direct
    members go in first, and a nested group's member already staged is skipped (ON CONFLICT). The direct members
    cannot conflict (the copy holds a member once per group), and are inserted without the clause, whose
    speculative insertion cost a quarter of staging 97,000 of them (in psql, 1.13-1.28 s against 0.84-0.89 s)."""
    insert = (
        "INSERT INTO {staged} (run_id, kind, group_id, object_id, device_id, display_name, serial_number, extra, data, "
        "removed) SELECT %s, %s, m.group_id, m.object_id, d.device_id, '', '', {through}, '', %s "
        "FROM {copy} m JOIN {copy} d ON d.kind = %s AND d.group_id = '' AND d.object_id = m.object_id "
        "{join} WHERE m.kind = %s AND m.extra = %s AND d.device_id <> '' AND {where} "
        "ORDER BY {order}{conflict}"
    )
    base = [run.pk, ObjectKind.CANDIDATE.value, False, ObjectKind.DEVICE.value]
    with connection.cursor() as cursor:
        cursor.execute(
            _sql(
                insert, through="'direct'", join="", where="m.group_id = %s", order="m.object_id", conflict=""
            ),
            [*base, ObjectKind.MEMBER.value, DEVICE_TYPE, group_id],
        )
        cursor.execute(
            _sql(
                insert,
                through="SUBSTR(g.display_name, 1, 256)",
                join=f"JOIN {TenantObject._meta.db_table} g ON g.kind = 'group' AND g.object_id = m.group_id",
                where="m.group_id <> %s",
                order="g.display_name, m.object_id",
                conflict=" ON CONFLICT DO NOTHING",
            ),
            [*base, ObjectKind.MEMBER.value, DEVICE_TYPE, group_id],
        )


def record_ignored(graph: GraphClient, group_id: str, state: RunState) -> None:
    """Members that are not discovered, and why: non-devices, groups nested two levels deep, devices without
    an Entra device ID. Delta rounds give members' IDs only: names come from the groups the portal follows, or
    once from the group's members of that type (kept on the copy's rows)."""
    copy = TenantObject.objects
    groups = dict(copy.filter(kind=ObjectKind.GROUP).values_list("object_id", "display_name"))
    suspects = copy.without_device_id() | copy.nested_too_deep(group_id) | copy.not_devices()
    ignored: list[tuple[TenantObject, str, str]] = []
    for member in suspects.order_by("group_id", "object_id"):
        where = (
            "the registration group"
            if member.group_id == group_id
            else groups.get(member.group_id, member.group_id)
        )
        if member.extra == DEVICE_TYPE:
            ignored.append((member, "Device without an Azure AD device ID.", "device"))
        elif member.extra == GROUP_TYPE:
            ignored.append(
                (
                    member,
                    f"Nested two levels deep (in {where}); Autopatch supports one level of "
                    "nesting, so its devices are not discovered.",
                    "group",
                )
            )
        else:
            ignored.append(
                (
                    member,
                    "Not a device: only devices are registered.",
                    member.extra.rsplit(".", 1)[-1] or "other",
                )
            )
    name_ignored(graph, [m for m, _, _ in ignored[:200] if not m.display_name and m.object_id not in groups])
    for member, reason, kind in ignored:
        name = member.display_name or groups.get(member.object_id, "")
        state.ignore({"id": member.object_id, "displayName": name, "@odata.type": member.extra}, reason, kind)


def name_ignored(graph: GraphClient, unnamed: list[TenantObject]) -> None:
    """Give ignored members their names, from each group's members of their type (one short list each)."""
    wanted: dict[tuple[str, str], list[TenantObject]] = {}
    for member in unnamed:
        if member.extra.startswith("#microsoft.graph."):
            wanted.setdefault((member.group_id, member.extra), []).append(member)
    for (group, odata_type), rows in wanted.items():
        try:
            names = directory.member_names(graph, group, odata_type.removeprefix("#"))
        except GraphError:
            continue  # names are a courtesy: the IDs are listed anyway
        for member in rows:
            member.display_name = (names.get(member.object_id) or "")[:256]
    TenantObject.objects.bulk_update([m for rows in wanted.values() for m in rows], ["display_name"])
