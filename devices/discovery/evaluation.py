"""Evaluation: every candidate whose inputs changed is evaluated and written, in chunks."""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import orjson
from django.db import connection, transaction
from django.db.models import (
    Count,
    Exists,
    Index,
    IntegerField,
    Model,
    OuterRef,
    Q,
    QuerySet,
    TextField,
    Window,
)
from django.db.models.functions import Cast, Mod, RowNumber

from .. import checks as c
from .. import sightings
from ..bulk import bulk_write, copy_rows, insert_new, instance_maker
from ..models import (
    Device,
    DeviceSighting,
    DeviceStatusChange,
    DiscoveryRun,
    ObjectKind,
    ReadinessReport,
    ReadinessStatus,
    StagedObject,
    TenantObject,
)
from . import indexes
from .reading import ANALYZE_AFTER, analyze, vacuumed_meanwhile
from .rings import RingAssigner, tenant_size
from .state import RunState
from .status import Report, evaluate_device, report_of_text
from .writer import ChunkWriter, ConnectionThread, commits_waiting_for_disk, meanwhile, run_in

CHUNK = 2000
# Chunks read ahead of the one evaluated, each in a thread with its own connection (where there are such threads).
READS_AHEAD = 2


def chunk_ends(members: QuerySet[StagedObject]) -> list[int]:
    """The key of every CHUNK-th of `members` in key order: the last keys of their chunks but the last one, so
    that chunks can be read at once. One walk of the staging's key index (29-33 ms for 96,942 candidates)."""
    keys = (
        members.annotate(n=Window(RowNumber(), order_by="pk"))
        .alias(nth=Mod("n", CHUNK, output_field=IntegerField()))
        .filter(nth=0)
    )
    return list(keys.values_list("pk", flat=True))


def duplicate_serials(run: DiscoveryRun) -> dict[str, int]:
    """Serial numbers held by more than one candidate or registered device, with how many hold them. A device an
    admin excluded holds none: excluding the old record of a replaced machine lets the new one register."""
    staged, copy, devices = StagedObject._meta.db_table, TenantObject._meta.db_table, Device._meta.db_table
    registered, registered_params = (
        Device.objects.registered()
        .exclude(serial_number="")
        .values_list("serial_number", "azure_ad_device_id")
        .query.sql_with_params()
    )
    # UNION keeps each (serial, device) pair once: COUNT(*) counts the devices (COUNT(DISTINCT) sorted them again, a
    # third of the query's 1.1 s at 100,000 devices).
    sql = f"""
        SELECT serial, COUNT(*) FROM (
            SELECT m.serial_number AS serial, m.device_id AS device_id
              FROM {copy} m JOIN {staged} mem
                ON mem.run_id = %s AND mem.kind = 'candidate' AND mem.device_id = m.device_id
             WHERE m.kind = 'managed' AND m.serial_number <> ''
               AND NOT EXISTS (SELECT 1 FROM {devices} x WHERE x.azure_ad_device_id = m.device_id AND x.excluded)
            UNION
            {registered}
        ) held GROUP BY serial HAVING COUNT(*) > 1
    """  # noqa: S608 - table names come from the models
    # Hashed: a first import plans it on a device table just emptied, and looked each candidate's managed record
    # up by index instead (0.64 s of the query's 0.87 s at 100,000 devices; hashed, 0.29 s in psql).
    with sightings.without_nested_loops(), connection.cursor() as cursor:
        cursor.execute(sql, [run.pk, *registered_params])
        return {serial: count for serial, count in cursor.fetchall()}


def latest_managed(rows: Iterable[tuple[str, str, str, str]]) -> dict[str, tuple[str, str, str]]:
    """The most recently synced managed device of each Azure AD device ID (re-enrollments leave several).

    Rows are (device_id, lastSyncDateTime, serial number, JSON); Graph's ISO times compare as text."""
    best: dict[str, tuple[str, str, str]] = {}
    for device_id, synced, serial, data in rows:
        kept = best.get(device_id)
        if kept is None or synced > kept[0]:
            best[device_id] = (synced, serial, data)
    return best


def apply_evaluation(state: RunState, beside: Callable[[], None] = lambda: None) -> None:
    """Evaluate the candidates and write what changed; `beside()` goes on in a connection of its own while the
    evaluation's first queries run (the shared serial numbers: 0.35-0.7 s of the database alone at 100,000
    devices), and ends before the chunks' evaluation begins."""
    run = state.run
    complete = not state.unreadable_groups
    state.counts.update(changed=0, registered_now=0, evaluated=0)
    members = StagedObject.objects.filter(run=run, kind=ObjectKind.CANDIDATE).order_by("pk")
    with meanwhile("discovery-beside", beside):
        duplicates = duplicate_serials(run)
        rings = RingAssigner(tenant_size(run))
        wanted = None if needs_every_candidate(state) else maybe_changed(state, duplicates)
        indexes.build_missing(Device)  # a run that died during a first import left them missing
        deferred = indexes.drop(Device) if indexes.first_import(Device, members.count()) else []
    try:
        evaluate_all(state, members, wanted, duplicates, rings, complete, deferred)
    finally:
        if deferred:  # an evaluation that failed before its build began
            indexes.build_missing(Device)
    if not deferred:  # a first import's upkeep went on before its builds (evaluate_all)
        upkeep(state, Device)
    for status, n in (
        Device.objects.values("readiness_status").annotate(n=Count("pk")).values_list("readiness_status", "n")
    ):
        state.counts[status] = n


def upkeep(state: RunState, *models: type[Model]) -> None:
    """The tables a run filled, vacuumed and analyzed: the tenant copy after a full read (reading), in a connection
    of its own, and the sightings and `models` once many devices changed. The blade reads these tables right after:
    without fresh statistics (autovacuum comes later) its counts and searches were planned badly for minutes after a
    first import, and without a visibility map its tab counts read every row (120 ms at 100,000 devices, 16 ms
    after; bench/README.md)."""
    with vacuumed_meanwhile(TenantObject, state.full_read), commits_waiting_for_disk():
        if state.counts["changed"] >= ANALYZE_AFTER:
            analyze(*models, DeviceSighting, vacuum=True)


def evaluate_all(
    state: RunState,
    members: QuerySet[StagedObject],
    wanted: set[str] | None,
    duplicates: dict[str, int],
    rings: RingAssigner,
    complete: bool,
    deferred: list[Index],
) -> None:
    """Every candidate (or those `wanted`) in chunks, their sightings, and the registered devices outside the
    group; the `deferred` indexes of the device table are built once every candidate's row is written."""
    run = state.run
    first_recording = not sightings.recording_times().exclude(pk=run.pk).exists()
    threads = ConnectionThread.available()

    def evaluate(subjects: dict[str, str | None], **where: Any) -> ChunkWrite | None:
        return evaluate_chunk(state, subjects, duplicates, rings, first_recording=first_recording, **where)

    def read_between(after: int, last: int | None) -> tuple[int, dict[str, str | None], ChunkReads]:
        """The chunk of candidates with keys after `after`, up to `last`: (its size, the candidates to evaluate
        with how each is in the group, what their evaluation reads)."""
        keys = members.filter(pk__gt=after) if last is None else members.filter(pk__gt=after, pk__lte=last)
        chunk = list(keys.values_list("device_id", "extra"))
        subjects: dict[str, str | None] = {
            device_id: extra for device_id, extra in chunk if wanted is None or device_id in wanted
        }
        # A first import began on an empty table: its chunks read no stored devices (one the API adds meanwhile
        # is caught at the write, as one added after a chunk's read is: evaluate_chunk).
        return len(chunk), subjects, read_chunk(list(subjects), stored=not deferred)

    # The next chunks are read while this one is evaluated, each by a reader of its own: a first run at 100,000
    # devices spent a third of its evaluation waiting for these reads when none was read ahead, and 1.8 s of 7.8
    # with one chunk read ahead. Their devices are not this chunk's, so this chunk's write changes nothing they
    # read, and an admin's action meanwhile is caught at the write.
    readers = [ConnectionThread(f"discovery-reader-{n}") for n in range(READS_AHEAD)] if threads else []
    ends = chunk_ends(members)
    bounds = list(zip([0, *ends], [*ends, None], strict=True))

    def start_reading(n: int) -> Future[tuple[int, dict[str, str | None], ChunkReads]]:
        return run_in(readers[n % READS_AHEAD] if readers else None, read_between, *bounds[n])

    with ChunkWriter(write_chunk, lambda write, kept: chunk_written(state, write, kept, evaluate)) as writer:
        try:
            ahead = deque(start_reading(n) for n in range(min(READS_AHEAD, len(bounds))))
            done, following = 0, len(ahead)
            while ahead:
                size, subjects, reads = ahead.popleft().result()
                if following < len(bounds):
                    ahead.append(start_reading(following))
                    following += 1
                if subjects:
                    writer.submit(evaluate(subjects, reads=reads))
                state.counts["evaluated"] += len(subjects)
                done += size
                state.progress(f"Evaluated {done} devices")
        finally:
            for reader in readers:
                reader.close()
        writer.drain()  # every candidate's row written: the sightings join them
        # A first import's table is vacuumed and analyzed meanwhile, before its indexes are built: VACUUM and
        # CREATE INDEX cannot run at once, and after the builds it was one core's work (0.8 s at 100,000 devices)
        # with nothing beside it, and it visited the two trigram indexes too. The sightings read the device table
        # and write their own; the devices outside the group are read and written meanwhile too (none in a first
        # import but those the API added; after the builds, they held it for 0.2 s with a core idle).
        with vacuumed_meanwhile(Device, bool(deferred), statistics=True):
            sightings.record(run, state.now)
            # Devices once registered (excluded too) that left the group stay registered: refresh their readiness
            # status.
            seen = members.values("device_id")
            stale = (
                Device.objects.filter(registered_at__isnull=False)
                .exclude(azure_ad_device_id__in=seen)
                .order_by("pk")
            )
            last_pk = 0
            while chunk_ids := list(
                stale.filter(pk__gt=last_pk).values_list("pk", "azure_ad_device_id")[:CHUNK]
            ):
                last_pk = chunk_ids[-1][0]
                writer.submit(
                    evaluate(
                        {device_id: None for _, device_id in chunk_ids}, in_group=False, complete=complete
                    )
                )
            writer.drain()
            if complete:
                Device.objects.filter(registered_at__isnull=True, in_registration_group=True).exclude(
                    azure_ad_device_id__in=seen
                ).update(in_registration_group=False, fingerprint="")  # evaluated afresh if it comes back
            if deferred:
                # The other tables' upkeep too: after the builds it held the run for 0.2 s with a core idle, and
                # here a core waits for the device table's VACUUM (ANALYZE) (0.9 s at 100,000 devices).
                upkeep(state)
        indexes.build(Device, deferred)
    state.counts["candidates"] = members.count()


# Part of every device's input key: bump it when evaluation changes, so that every device is evaluated again.
EVALUATION_VERSION = 1


def needs_every_candidate(state: RunState) -> bool:
    """A full read, a change of evaluation, or a last run that did not end well: evaluate every candidate (their
    input keys still spare the unchanged ones the writes)."""
    last = (
        DiscoveryRun.objects.ran()
        .exclude(pk=state.run.pk)
        .filter(finished_at__isnull=False)
        .only("status", "counts")
        .first()
    )
    state.counts["evaluation_version"] = EVALUATION_VERSION
    return (
        state.full_read
        or bool(state.unreadable_groups)
        or last is None
        or last.status != DiscoveryRun.Status.SUCCEEDED
        or last.counts.get("evaluation_version") != EVALUATION_VERSION
    )


def aged_since(now: datetime, then: datetime) -> set[str]:
    """Devices whose check-in bucket (check_in_bucket) time alone changed between two runs: they crossed the
    28-day window, or a stale one's count of days went up."""
    window = c.CHECK_IN_WINDOW
    aged = Device.objects.filter(last_intune_checkin__lt=now - window + timedelta(days=1))
    return {
        device_id
        for device_id, synced in aged.values_list("azure_ad_device_id", "last_intune_checkin")
        if (now - synced > window) != (then - synced > window) or (now - synced).days != (then - synced).days
    }


def maybe_changed(state: RunState, duplicates: dict[str, int]) -> set[str]:
    """The Entra device IDs whose evaluation this run may change, after delta reads: records and memberships
    that changed, devices in the group through another path (a renamed group) or back in it, readiness reports
    newer than the last run, check-ins that time alone moved, devices an admin excluded or restored, shared
    serial numbers, names a changed record carries (dual state), and devices new to the portal."""
    run = state.run
    staged = StagedObject.objects.filter(run=run)
    changed = set(
        staged.filter(kind__in=(ObjectKind.DEVICE, ObjectKind.MANAGED))
        .exclude(device_id="")
        .values_list("device_id", flat=True)
    )
    members = staged.filter(kind=ObjectKind.MEMBER).values("object_id")
    changed |= set(
        TenantObject.objects.filter(kind=ObjectKind.DEVICE, object_id__in=members).values_list(
            "device_id", flat=True
        )
    )
    moved = Device.objects.filter(azure_ad_device_id=OuterRef("device_id")).filter(
        ~Q(added_through=OuterRef("extra")) | Q(in_registration_group=False)
    )
    changed |= set(
        staged.filter(kind=ObjectKind.CANDIDATE).filter(Exists(moved)).values_list("device_id", flat=True)
    )
    # Reports the last run took in were evaluated by it: newer ones came after it ended.
    last_started, last_finished = DiscoveryRun.objects.ran().filter(
        pk__lt=run.pk, finished_at__isnull=False
    ).values_list("started_at", "finished_at").first() or (None, None)
    if last_finished is not None:
        changed |= set(
            ReadinessReport.objects.filter(received_at__gte=last_finished).values_list(
                "azure_ad_device_id", flat=True
            )
        )
    changed |= aged_since(state.now, last_started or state.now)
    names = staged.filter(kind=ObjectKind.DEVICE).exclude(display_name="").values("display_name")
    changed |= set(
        Device.objects.filter(
            Q(fingerprint="")
            | (Q(excluded=True) & ~Q(readiness_status=ReadinessStatus.EXCLUDED))
            | Q(excluded=False, readiness_status=ReadinessStatus.EXCLUDED)
            | Q(serial_number__in=list(duplicates))
            | Q(failed_checks__contains=c.UNIQUE_SERIAL_NUMBER)
            | Q(device_name__in=names)
        ).values_list("azure_ad_device_id", flat=True)
    )
    known = Device.objects.values("azure_ad_device_id")
    changed |= set(
        staged.filter(kind=ObjectKind.CANDIDATE)
        .exclude(device_id__in=known)
        .values_list("device_id", flat=True)
    )
    return changed


# A device's own state, which admins change too (ring, exclusion): part of its input key.
STATE_FIELDS = (
    "readiness_status",
    "registered_at",
    "ring",
    "ring_assigned_by",
    "excluded",
    "added_through",
    "in_registration_group",
)


def input_key(*parts: object) -> str:
    """A digest of everything a device's evaluation depends on: the same key means the same outcome.

    The parts (JSON text, numbers, times, choices) are written by orjson in one call: joined as their str(), they
    took 18 us a device (a time's str() alone 3.6 us), this way 2.6 us, and every run computes one for each
    candidate it evaluates. A key written the older way matches none, so such a device is evaluated once more."""
    return hashlib.sha1(orjson.dumps((EVALUATION_VERSION, *parts)), usedforsecurity=False).hexdigest()


def check_in_bucket(last_sync: str | None, now: datetime) -> str:
    """What time changes in an evaluation: within 28 days or not, and for a stale device the days it has been."""
    synced = c.parse_graph_time(last_sync)
    if synced is None:
        return "never"
    return "fresh" if now - synced <= c.CHECK_IN_WINDOW else f"stale:{(now - synced).days}"


class ChunkReads(NamedTuple):
    """What a chunk's evaluation reads, by Entra device ID: the Entra record (name, JSON), the latest Intune
    record (lastSyncDateTime, serial number, JSON), the device's input key and state as stored, and the
    readiness report (its time, its checks as JSON)."""

    entra: dict[str, tuple[str, str]]
    managed: dict[str, tuple[str, str, str]]
    stored: dict[str, tuple]
    reports: dict[str, tuple[datetime, str]]


def read_chunk(ids: list[str], stored: bool = True) -> ChunkReads:
    """What the evaluation of the devices `ids` reads; without `stored`, none of their rows as stored."""
    copy = TenantObject.objects.all()
    entra = {
        d: (name, data)
        for d, name, data in copy.filter(kind=ObjectKind.DEVICE, device_id__any_of=ids).values_list(
            "device_id", "display_name", "data"
        )
    }
    managed = latest_managed(
        copy.filter(kind=ObjectKind.MANAGED, device_id__any_of=ids).values_list(
            "device_id", "extra", "serial_number", "data"
        )
    )
    rows = (
        {
            row[0]: row[1:]
            for row in Device.objects.filter(azure_ad_device_id__any_of=ids).values_list(
                "azure_ad_device_id", "fingerprint", *STATE_FIELDS
            )
        }
        if stored
        else {}
    )
    # Each report's time and its checks as JSON text, parsed only for the devices evaluated: loaded as model
    # instances (their JSON through the standard library's parser) they were a seventh of a first run's evaluation
    # at 100,000 devices.
    reports = {
        device_id: (generated_at, checks)
        for device_id, generated_at, checks in ReadinessReport.objects.filter(
            azure_ad_device_id__any_of=ids
        ).values_list("azure_ad_device_id", "generated_at", Cast("checks", TextField()))
    }
    return ChunkReads(entra, managed, rows, reports)


def evaluate_chunk(
    state: RunState,
    subjects: dict[str, str | None],
    duplicates: dict[str, int],
    rings: RingAssigner,
    in_group: bool = True,
    complete: bool = True,
    attempt: int = 1,
    reads: ChunkReads | None = None,
    first_recording: bool = False,
) -> ChunkWrite | None:
    """Evaluate one chunk of devices (candidates, or registered devices outside the group): the write of what
    changed, or None.

    A device whose inputs (Graph records, report, serial duplicates, its own state) match the key stored at
    its last evaluation is not evaluated again: an hourly run over an unchanged tenant reads, but writes little."""
    run, now = state.run, state.now
    subjects = {d: a for d, a in subjects.items() if d not in state.skipped_devices}  # left as they were
    entra_rows, managed_rows, stored, report_rows = reads or read_chunk(list(subjects))
    twins = hybrid_twins(
        run,
        [
            orjson.loads(text)
            for d, (_, text) in entra_rows.items()
            if d not in managed_rows and '"trustType":"Workplace"' in text
        ],
    )
    pending: dict[str, tuple[str | None, tuple]] = {}
    for device_id, added_through in subjects.items():
        name, entra = entra_rows.get(device_id, ("", None))
        last_sync, serial, managed = managed_rows.get(device_id, (None, "", None))
        if entra is None and device_id not in stored:
            state.errors.append(
                {"stage": "evaluate", "message": f"Device {device_id} is in the group but not in Azure AD."}
            )
            continue
        inputs = (
            entra,
            managed,
            report_rows[device_id][0] if device_id in report_rows else None,
            duplicates.get(serial, 1),
            name in twins,
            check_in_bucket(last_sync, now),
            added_through,
            in_group,
            complete,
        )
        if device_id in stored and stored[device_id][0] == input_key(*inputs, *stored[device_id][1:]):
            continue
        pending[device_id] = (added_through, inputs)
    if not pending:
        return None
    # Only devices the chunk's read found are read again (a first run's chunks: none, and no query). One created
    # since that read (by the API) is caught at the write, as one created after this query is: insert_new falls
    # back to bulk_write's upsert, which leaves a row an admin's action changed meanwhile alone.
    known = [device_id for device_id in pending if device_id in stored]
    existing = {
        d.azure_ad_device_id: d
        for d in (Device.objects.filter(azure_ad_device_id__any_of=known).defer("checks") if known else ())
    }
    reports = {
        device_id: Report(report_rows[device_id][0], *report_of_text(report_rows[device_id][1]))
        for device_id in pending
        if device_id in report_rows
    }
    upserts: list[Device] = []
    changes: list[tuple[Device, str, str, str]] = []
    make_device = instance_maker(Device)
    for device_id, (added_through, inputs) in pending.items():
        record = orjson.loads(entra_rows[device_id][1]) if device_id in entra_rows else None
        managed = orjson.loads(managed_rows[device_id][2]) if device_id in managed_rows else None
        device = existing.get(device_id)
        candidate = c.Candidate(
            entra=record or {"deviceId": device_id, "displayName": device.device_name if device else ""},
            managed=managed,
            now=now,
            serial_shared_with=duplicates.get(((managed or {}).get("serialNumber") or "").strip(), 1) - 1,
            hybrid_twin=name if (name := (record or {}).get("displayName") or "") in twins else "",
        )
        outcome, cause = evaluate_device(
            candidate, device, reports.get(device_id), added_through, in_group, complete, rings
        )
        # The key is stored with the state this evaluation leaves, which the next run reads back.
        outcome["fingerprint"] = input_key(*inputs, *(outcome[f] for f in STATE_FIELDS))
        outcome["azure_ad_device_id"] = device_id
        new = make_device(outcome)
        if device is not None:
            new.pk, new.first_discovered_at = device.pk, device.first_discovered_at
            new.state_version = device.state_version  # written only if no admin action came since this read
        upserts.append(new)
        before = device.readiness_status if device else ""
        ring_before = device.ring if device else ""
        if (
            before != outcome["readiness_status"]
            or ring_before != outcome["ring"]
            or reenrolled(device, outcome)
        ):
            changes.append((new, before, cause, ring_before))
    upserts.sort(key=lambda d: d.pk or 0)  # rows locked in key order, as admin actions lock them: no deadlock
    return ChunkWrite(
        upserts,
        changes,
        {d: subjects[d] for d in pending},
        run.pk,
        now,
        in_group,
        complete,
        attempt,
        first_found=first_recording and in_group,
    )


@dataclass
class ChunkWrite:
    """What one chunk's evaluation writes: its devices, their status changes (device, status before, cause, ring
    before), and what it evaluated (to evaluate again the devices an admin's action got ahead of)."""

    upserts: list[Device]
    changes: list[tuple[Device, str, str, str]]
    evaluated: dict[str, str | None]
    run_id: int
    now: datetime
    in_group: bool
    complete: bool
    attempt: int
    first_found: bool = False  # candidates of a run recording the first sightings (sightings.inserted_found)


def write_chunk(write: ChunkWrite) -> set[str]:
    """One transaction: the devices, each only if no admin action came since it was read, and the status changes
    of those written. Returns the Entra device IDs written."""
    with transaction.atomic(), sightings.inserted_found(write.first_found):
        # A first run's chunks hold only devices new to the portal.
        write_devices = insert_new if all(d.pk is None for d in write.upserts) else bulk_write
        written = write_devices(
            write.upserts,
            unique_field="azure_ad_device_id",
            version_field="state_version",
            update_fields=[f for f in WRITTEN_FIELDS if f != "azure_ad_device_id"],
        )
        kept = {d.azure_ad_device_id for d in written}
        # Plain rows, copied into the table: a first run's 97,000 status changes went as instances through a
        # scratch table.
        copy_rows(
            DeviceStatusChange,
            STATUS_CHANGE_COLUMNS,
            [
                (d.pk, before, d.readiness_status, ring_before, d.ring, write.now, cause, write.run_id)
                for d, before, cause, ring_before in write.changes
                if d.azure_ad_device_id in kept
            ],
        )
    return kept


STATUS_CHANGE_COLUMNS = (
    "device_id",
    "from_status",
    "to_status",
    "from_ring",
    "to_ring",
    "changed_at",
    "cause",
    "run_id",
)


def chunk_written(
    state: RunState, write: ChunkWrite, kept: set[str], evaluate: Callable[..., ChunkWrite | None]
) -> ChunkWrite | None:
    """Count a chunk's write; the devices an admin changed after the chunk read them are evaluated again from what
    they are now (the write returned), at most WRITE_ATTEMPTS times."""
    state.counts["changed"] += len(kept)
    state.counts["registered_now"] += sum(
        1
        for d, before, _, _ in write.changes
        if d.azure_ad_device_id in kept
        and before in ("", ReadinessStatus.PREREQUISITES_FAILED)
        and d.registered_at == write.now
    )
    acted_on = {device_id: through for device_id, through in write.evaluated.items() if device_id not in kept}
    if acted_on and write.attempt < WRITE_ATTEMPTS:
        return evaluate(acted_on, in_group=write.in_group, complete=write.complete, attempt=write.attempt + 1)
    if acted_on:  # still changing: the next run evaluates them (an empty key is never a match)
        Device.objects.filter(azure_ad_device_id__any_of=acted_on).update(fingerprint="")
    return None


def reenrolled(device: Device | None, outcome: dict) -> bool:
    """A registered device that enrolled in Intune again under the same Azure AD device ID (a reimage): its
    history says so even when its readiness status stays the same."""
    return bool(
        device is not None
        and device.registered_at is not None
        and device.intune_device_id
        and outcome["intune_device_id"]
        and outcome["intune_device_id"] != device.intune_device_id
    )


# Evaluations of a chunk whose devices an admin keeps changing; a device still changing is left to the next run.
WRITE_ATTEMPTS = 3


WRITTEN_FIELDS = [
    "azure_ad_device_id",
    "entra_object_id",
    "intune_device_id",
    "device_name",
    "serial_number",
    "model",
    "manufacturer",
    "operating_system",
    "os_version",
    "edition",
    "architecture",
    "join_type",
    "management",
    "owner",
    "primary_user",
    "last_intune_checkin",
    "readiness_status",
    "failed_checks",
    "checks",
    "report_generated_at",
    "registered_at",
    "ring",
    "ring_assigned_by",
    "excluded",
    "added_through",
    "in_registration_group",
    "fingerprint",
]


def hybrid_twins(run: DiscoveryRun, registered_records: list[dict]) -> set[str]:
    """Names of Azure AD registered records that a hybrid joined record shares (dual state: the same device)."""
    names = {r.get("displayName") for r in registered_records if r.get("displayName")}
    if not names:
        return set()
    return {
        name
        for name, data in TenantObject.objects.filter(
            kind=ObjectKind.DEVICE, display_name__any_of=names
        ).values_list("display_name", "data")
        if (orjson.loads(data).get("trustType") or "").lower() == "serverad"
    }
