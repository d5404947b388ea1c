"""Discovery: read the registration group from Graph, evaluate every candidate, register, record the run.

A run reads the tenant into staging rows first (so memory does not grow with the tenant, and
nothing is changed from a read that did not complete), then evaluates candidates in chunks and
writes only the devices whose evaluation changed.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from . import checks as c
from .bulk import bulk_write, copy_rows
from .connector import TenantConnection, connect
from .graph import GraphError, dumps
from .models import (
    Device,
    DeviceSighting,
    DeviceStatusChange,
    DiscoveryLease,
    DiscoveryRun,
    Management,
    ReadinessReport,
    ReadinessStatus,
    Ring,
    RingAssignedBy,
    StagedObject,
)
from .readiness import ingest_reports
from .simulated_tenant import TenantFileError

log = logging.getLogger(__name__)

CHUNK = 2000
LEASE = "discovery"
DEVICE_TYPE = "#microsoft.graph.device"
GROUP_TYPE = "#microsoft.graph.group"
MEMBER_SELECT = "id,deviceId,displayName"
# Not approximateLastSignInDateTime: it changes at every sign-in, evaluation does not use it, and as part of a
# device's input key it would make every hourly run evaluate most devices again.
DEVICE_SELECT = ",".join(
    ("id", "deviceId", "displayName", "operatingSystem", "operatingSystemVersion", "trustType", "accountEnabled",
     "profileType", "registrationDateTime")
)  # fmt: skip
MANAGED_SELECT = ",".join(
    ("id", "azureADDeviceId", "deviceName", "operatingSystem", "osVersion", "lastSyncDateTime", "managementAgent",
     "ownerType", "skuFamily", "skuNumber", "processorArchitecture", "joinType", "serialNumber", "model",
     "manufacturer", "userPrincipalName", "configurationManagerClientEnabledFeatures")
)  # fmt: skip
MAX_IGNORED_LISTED = 100
# Ring shares of First, Fast and Broad; Test is only ever assigned by an admin.
RING_SHARES_SMALL = {Ring.FIRST: 0.05, Ring.FAST: 0.15, Ring.BROAD: 0.80}
RING_SHARES_LARGE = {Ring.FIRST: 0.01, Ring.FAST: 0.09, Ring.BROAD: 0.90}
SMALL_TENANT = 200
JOIN_TYPES = {
    "azureadjoined": "Azure AD joined", "hybridazureadjoined": "Hybrid Azure AD joined",
    "azureadregistered": "Azure AD registered", "azuread": "Azure AD joined", "serverad": "Hybrid Azure AD joined",
    "workplace": "Azure AD registered",
}  # fmt: skip


class DiscoveryAborted(Exception):
    """The tenant could not be read completely enough to change anything."""


# -- the lease that keeps runs from overlapping -------------------------------------------------


def acquire_lease(run: DiscoveryRun) -> bool:
    """Claim the single lease row; an expired lease (its worker died) can be taken over."""
    now = timezone.now()
    DiscoveryLease.objects.get_or_create(name=LEASE)
    lease = DiscoveryLease.objects.filter(name=LEASE)
    previous = lease.values_list("holder_id", flat=True).first()
    claimed = lease.filter(Q(holder__isnull=True) | Q(expires_at__lt=now)).update(
        holder=run, expires_at=now + timedelta(seconds=settings.AUTOPATCH_DISCOVERY_LEASE_SECONDS)
    )
    if claimed != 1:
        return False
    if previous and previous != run.pk:
        DiscoveryRun.objects.filter(pk=previous, status=DiscoveryRun.Status.RUNNING).update(
            status=DiscoveryRun.Status.FAILED, finished_at=now, progress="",
            errors=[{"stage": "worker", "message": "The worker running this discovery stopped; its lease lapsed."}],
        )  # fmt: skip
    return True


def renew_lease(run: DiscoveryRun) -> None:
    expires = timezone.now() + timedelta(seconds=settings.AUTOPATCH_DISCOVERY_LEASE_SECONDS)
    DiscoveryLease.objects.filter(name=LEASE, holder=run).update(expires_at=expires)


def release_lease(run: DiscoveryRun) -> None:
    DiscoveryLease.objects.filter(name=LEASE, holder=run).update(holder=None, expires_at=None)


def active_run() -> DiscoveryRun | None:
    """The run under way or waiting for a worker, if any (a run whose worker died does not count)."""
    now = timezone.now()
    lease = DiscoveryLease.objects.filter(name=LEASE, holder__isnull=False, expires_at__gte=now).first()
    if lease is not None:
        return lease.holder
    recent = now - timedelta(seconds=settings.AUTOPATCH_DISCOVERY_LEASE_SECONDS)
    return DiscoveryRun.objects.filter(status=DiscoveryRun.Status.QUEUED, queued_at__gte=recent).first()


# -- one run -------------------------------------------------------------------------------------


@dataclass
class RunState:
    run: DiscoveryRun
    now: datetime
    errors: list[dict[str, str]] = field(default_factory=list)
    ignored: list[dict[str, str]] = field(default_factory=list)
    ignored_counts: Counter[str] = field(default_factory=Counter)
    unreadable_groups: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def ignore(self, item: dict, reason: str, kind: str) -> None:
        self.ignored_counts[kind] += 1
        if len(self.ignored) < MAX_IGNORED_LISTED or kind == "group":
            self.ignored.append({"id": item.get("id", ""), "name": item.get("displayName") or "",
                                 "type": (item.get("@odata.type") or "").rsplit(".", 1)[-1], "reason": reason})  # fmt: skip

    last_progress: float = 0.0

    def progress(self, text: str) -> None:
        """Tell the UI how far the run is, and renew the lease; at most once a second."""
        moment = time.monotonic()
        if moment - self.last_progress < 1:
            return
        self.last_progress = moment
        DiscoveryRun.objects.filter(pk=self.run.pk).update(progress=text[:256])
        renew_lease(self.run)


def run_discovery(run: DiscoveryRun, tenant: TenantConnection | None = None) -> DiscoveryRun:
    """Carry out one discovery run, recording how it ended on the run's row."""
    if not acquire_lease(run):
        holder = DiscoveryLease.objects.filter(name=LEASE).values_list("holder_id", flat=True).first()
        DiscoveryRun.objects.filter(pk=run.pk).update(
            status=DiscoveryRun.Status.SKIPPED, started_at=timezone.now(), finished_at=timezone.now(),
            errors=[{"stage": "start", "message": f"Discovery run #{holder} is still in progress."}],
        )  # fmt: skip
        run.refresh_from_db()
        return run
    state = RunState(run=run, now=timezone.now())
    DiscoveryRun.objects.filter(pk=run.pk).update(status=DiscoveryRun.Status.RUNNING, started_at=state.now,
                                                  progress="Connecting to the tenant")  # fmt: skip
    status = DiscoveryRun.Status.FAILED
    graph_requests = 0
    started = time.monotonic()
    relaxed_commits(True)
    clear_staging()
    try:
        tenant = tenant or connect()
        try:
            ingest = ingest_reports(tenant.readiness_reports())
            for problem in ingest.rejected[:20]:
                state.errors.append({"stage": "readiness reports", "message": f"Report rejected: {problem}"})
            stage_tenant(tenant, state)
        finally:
            graph_requests = tenant.graph.requests_made
        read = time.monotonic()
        apply_evaluation(state)
        state.counts["seconds_reading"] = round(read - started, 1)
        state.counts["seconds_evaluating"] = round(time.monotonic() - read, 1)
        status = DiscoveryRun.Status.PARTIAL if state.errors else DiscoveryRun.Status.SUCCEEDED
    except (GraphError, DiscoveryAborted, TenantFileError) as exc:
        state.errors.append({"stage": "read", "message": str(exc)})
        log.warning("Discovery run %s failed: %s", run.pk, exc)
    except Exception as exc:  # recorded on the run, then raised for the worker's log
        state.errors.append({"stage": "internal", "message": f"{type(exc).__name__}: {exc}"})
        finish(run, state, status, graph_requests)
        raise
    finish(run, state, status, graph_requests)
    run.refresh_from_db()
    return run


def relaxed_commits(on: bool) -> None:
    """On PostgreSQL, a run's many small commits need not each wait for the disk: a crash loses at most the
    last moment of a run that the next run redoes anyway (no corruption, unlike fsync=off)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET synchronous_commit TO {'off' if on else 'DEFAULT'}")


def clear_staging() -> None:
    """Runs never overlap, so every staged row is this run's or a dead run's: TRUNCATE leaves no dead rows."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {StagedObject._meta.db_table}")
    else:  # (TRUNCATE inside a transaction would trip over deferred foreign-key checks)
        StagedObject.objects.all().delete()


def finish(run: DiscoveryRun, state: RunState, status: str, graph_requests: int) -> None:
    clear_staging()
    relaxed_commits(False)
    counts = dict(state.counts)
    counts.update({f"ignored_{kind}": n for kind, n in state.ignored_counts.items()})
    DiscoveryRun.objects.filter(pk=run.pk).update(
        status=status, finished_at=timezone.now(), progress="", counts=counts, errors=state.errors,
        ignored=state.ignored, graph_requests=graph_requests,
    )  # fmt: skip
    release_lease(run)


# -- reading the tenant into staging rows -------------------------------------------------------


def registration_group_id(tenant: TenantConnection) -> str:
    if tenant.registration_group_id:
        return tenant.registration_group_id
    name = settings.AUTOPATCH_REGISTRATION_GROUP_NAME
    found = [g for page in tenant.graph.pages("/v1.0/groups", {"$filter": f"displayName eq '{name}'",
                                                             "$select": "id,displayName"}) for g in page]  # fmt: skip
    if len(found) != 1:
        raise DiscoveryAborted(
            f"The tenant has {len(found)} groups named {name!r}; set AUTOPATCH_REGISTRATION_GROUP_ID to the one to use."
            if found else f"The tenant has no group named {name!r}: create it, or set AUTOPATCH_REGISTRATION_GROUP_ID."
        )
    return found[0]["id"]


def stage_tenant(tenant: TenantConnection, state: RunState) -> None:
    """Read members (one level of nesting), devices and Windows managed devices, page by page."""
    run = state.run
    group_id = registration_group_id(tenant)
    nested: list[dict] = []
    state.progress("Reading the registration group")
    members_url = f"/v1.0/groups/{group_id}/members"
    page_size = settings.AUTOPATCH_GRAPH_PAGE_SIZE
    params = {"$select": MEMBER_SELECT, "$top": page_size}
    for page in tenant.graph.pages(members_url, params):
        stage_members(run, page, "direct", state, nested)
    for group in nested:
        name = group.get("displayName") or group["id"]
        state.progress(f"Reading nested group {name}")
        try:
            for page in tenant.graph.pages(f"/v1.0/groups/{group['id']}/members", params):
                stage_members(run, page, name, state, None)
        except GraphError as exc:
            # Its devices are left as they were; the next run reads the group again.
            StagedObject.objects.filter(run=run, kind=StagedObject.Kind.MEMBER, extra=name).delete()
            state.unreadable_groups.append(group["id"])
            state.errors.append({"stage": f"nested group {name}", "message": str(exc)})
    read = 0
    for page in tenant.graph.pages("/v1.0/devices", {"$select": DEVICE_SELECT, "$top": page_size}):
        stage(run, [(StagedObject.Kind.DEVICE, d.get("id") or "", d["deviceId"], (d.get("displayName") or "")[:256],
                     "", "", dumps(d)) for d in page if d.get("deviceId")])  # fmt: skip
        read += len(page)
        state.progress(f"Read {read} Azure AD devices")
    read = 0
    managed_params = {"$select": MANAGED_SELECT, "$filter": "operatingSystem eq 'Windows'", "$top": page_size}
    for page in tenant.graph.pages("/beta/deviceManagement/managedDevices", managed_params):
        stage(run, [(StagedObject.Kind.MANAGED, m.get("id") or "", m["azureADDeviceId"], "",
                     (m.get("serialNumber") or "").strip()[:128], (m.get("lastSyncDateTime") or "")[:256], dumps(m))
                    for m in page if m.get("azureADDeviceId")])  # fmt: skip
        read += len(page)
        state.progress(f"Read {read} Intune managed devices")
    if connection.vendor == "postgresql":
        # Fresh staging rows have no statistics; without them the joins below are planned badly.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {StagedObject._meta.db_table}")


STAGED_COLUMNS = ("kind", "object_id", "device_id", "display_name", "serial_number", "extra", "data")


def stage(run: DiscoveryRun, rows: list[tuple[str, ...]], ignore_conflicts: bool = False) -> None:
    """Insert one page of staging rows."""
    copy_rows(StagedObject, ("run_id", *STAGED_COLUMNS), [(run.pk, *row) for row in rows],
              ignore_conflicts=ignore_conflicts)  # fmt: skip


def stage_members(run: DiscoveryRun, page: list[dict], added_through: str, state: RunState,
                  nested: list[dict] | None) -> None:  # fmt: skip
    rows = []
    for member in page:
        kind = member.get("@odata.type")
        if kind == DEVICE_TYPE and member.get("deviceId"):
            rows.append((StagedObject.Kind.MEMBER, member["id"], member["deviceId"], "", "", added_through[:256], ""))
        elif kind == GROUP_TYPE and nested is not None:
            nested.append(member)
        elif kind == GROUP_TYPE:
            state.ignore(member, f"Nested two levels deep (in {added_through}); Autopatch supports one level "
                                 "of nesting, so its devices are not discovered.", "group")  # fmt: skip
        elif kind == DEVICE_TYPE:
            state.ignore(member, "Device without an Azure AD device ID.", "device")
        else:
            state.ignore(member, "Not a device: only devices are registered.", (kind or "").rsplit(".", 1)[-1] or "other")
    # A device that is both a direct member and in a nested group counts as direct (read first).
    stage(run, rows, ignore_conflicts=True)


# -- evaluation ----------------------------------------------------------------------------------


def duplicate_serials(run: DiscoveryRun) -> dict[str, int]:
    """Serial numbers held by more than one candidate or registered device, with how many hold them."""
    staged = StagedObject._meta.db_table
    devices = Device._meta.db_table
    sql = f"""
        SELECT serial, COUNT(DISTINCT device_id) FROM (
            SELECT m.serial_number AS serial, m.device_id AS device_id
              FROM {staged} m JOIN {staged} mem
                ON mem.run_id = m.run_id AND mem.kind = 'member' AND mem.device_id = m.device_id
             WHERE m.run_id = %s AND m.kind = 'managed' AND m.serial_number <> ''
            UNION
            SELECT serial_number, azure_ad_device_id FROM {devices}
             WHERE registered_at IS NOT NULL AND excluded = %s AND serial_number <> ''
        ) held GROUP BY serial HAVING COUNT(DISTINCT device_id) > 1
    """  # noqa: S608 - table names come from the models
    with connection.cursor() as cursor:
        cursor.execute(sql, [run.pk, False])
        return {serial: count for serial, count in cursor.fetchall()}


def tenant_size(run: DiscoveryRun) -> int:
    """Devices the rings are shared among: registered ones plus candidates not registered yet."""
    registered = Device.objects.filter(registered_at__isnull=False, excluded=False)
    members = StagedObject.objects.filter(run=run, kind=StagedObject.Kind.MEMBER)
    return registered.count() + members.exclude(device_id__in=registered.values("azure_ad_device_id")).count()


class RingAssigner:
    """Deterministic rings: each new device joins the ring furthest below its share (Test is never automatic)."""

    def __init__(self, size: int):
        self.shares = RING_SHARES_SMALL if size <= SMALL_TENANT else RING_SHARES_LARGE
        counts = Counter(Device.objects.filter(registered_at__isnull=False, excluded=False, ring__in=self.shares)
                         .values_list("ring", flat=True))  # fmt: skip
        self.counts = {ring: counts.get(ring, 0) for ring in self.shares}

    def next(self) -> str:
        total = sum(self.counts.values()) + 1
        ring = max(self.shares, key=lambda r: self.shares[r] * total - self.counts[r])
        self.counts[ring] += 1
        return ring


def latest_managed(rows: Iterable[tuple[str, str, str, str]]) -> dict[str, tuple[str, str, str]]:
    """The most recently synced managed device of each Azure AD device ID (re-enrollments leave several).

    Rows are (device_id, lastSyncDateTime, serial number, JSON); Graph's ISO times compare as text."""
    best: dict[str, tuple[str, str, str]] = {}
    for device_id, synced, serial, data in rows:
        kept = best.get(device_id)
        if kept is None or synced > kept[0]:
            best[device_id] = (synced, serial, data)
    return best


def apply_evaluation(state: RunState) -> None:
    run = state.run
    complete = not state.unreadable_groups
    duplicates = duplicate_serials(run)
    rings = RingAssigner(tenant_size(run))
    state.counts.update(changed=0, registered_now=0)
    members = StagedObject.objects.filter(run=run, kind=StagedObject.Kind.MEMBER).order_by("pk")
    last_pk, done = 0, 0
    while chunk := list(members.filter(pk__gt=last_pk).values_list("pk", "device_id", "extra")[:CHUNK]):
        last_pk = chunk[-1][0]
        evaluate_chunk(state, {device_id: extra for _, device_id, extra in chunk}, duplicates, rings)
        done += len(chunk)
        state.progress(f"Evaluated {done} devices")
    record_sightings(run, state.now)
    # Registered devices no longer in the group stay registered: refresh their readiness status.
    seen = members.values("device_id")
    stale = Device.objects.filter(registered_at__isnull=False).exclude(azure_ad_device_id__in=seen).order_by("pk")
    last_pk = 0
    while chunk_ids := list(stale.filter(pk__gt=last_pk).values_list("pk", "azure_ad_device_id")[:CHUNK]):
        last_pk = chunk_ids[-1][0]
        evaluate_chunk(state, {device_id: None for _, device_id in chunk_ids}, duplicates, rings, in_group=False,
                       complete=complete)  # fmt: skip
    if complete:
        Device.objects.filter(registered_at__isnull=True, in_registration_group=True).exclude(
            azure_ad_device_id__in=seen
        ).update(in_registration_group=False, fingerprint="")  # evaluated afresh if it comes back
    state.counts["candidates"] = StagedObject.objects.filter(run=run, kind=StagedObject.Kind.MEMBER).count()
    for status, n in Device.objects.values("readiness_status").annotate(n=Count("pk")).values_list("readiness_status", "n"):
        state.counts[status] = n


# Part of every device's input key: bump it when evaluation changes, so that every device is evaluated again.
EVALUATION_VERSION = "1"


# A device's own state, which admins change too (ring, exclusion): part of its input key.
STATE_FIELDS = ("readiness_status", "registered_at", "ring", "ring_assigned_by", "excluded", "added_through",
                "in_registration_group")  # fmt: skip


def input_key(*parts: object) -> str:
    """A digest of everything a device's evaluation depends on: the same key means the same outcome."""
    return hashlib.sha1("\x1f".join(map(str, (EVALUATION_VERSION, *parts))).encode(), usedforsecurity=False).hexdigest()


def check_in_bucket(last_sync: str | None, now: datetime) -> str:
    """What time changes in an evaluation: within 28 days or not, and for a stale device the days it has been."""
    synced = c.parse_graph_time(last_sync)
    if synced is None:
        return "never"
    return "fresh" if now - synced <= c.CHECK_IN_WINDOW else f"stale:{(now - synced).days}"


def record_sightings(run: DiscoveryRun, now: datetime) -> None:
    """One statement: every device this run found in the registration group was last discovered now."""
    sightings, devices, staged = DeviceSighting._meta.db_table, Device._meta.db_table, StagedObject._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {sightings} (device_id, last_discovered_at)
                SELECT d.id, %s FROM {devices} d JOIN {staged} m ON m.device_id = d.azure_ad_device_id
                 WHERE m.run_id = %s AND m.kind = 'member'
                ON CONFLICT (device_id) DO UPDATE SET last_discovered_at = excluded.last_discovered_at""",
            [now, run.pk],
        )  # noqa: S608 - table names come from the models


def evaluate_chunk(state: RunState, subjects: dict[str, str | None], duplicates: dict[str, int], rings: RingAssigner,
                   in_group: bool = True, complete: bool = True) -> None:  # fmt: skip
    """Evaluate one chunk of devices (candidates, or registered devices outside the group) and write changes.

    A device whose inputs (Graph records, report, serial duplicates, its own state) match the key stored at
    its last evaluation is not evaluated again: an hourly run over an unchanged tenant reads, but writes little."""
    run, now = state.run, state.now
    ids = list(subjects)
    staged = StagedObject.objects.filter(run=run)
    entra_rows = {d: (name, data) for d, name, data in staged.filter(kind=StagedObject.Kind.DEVICE, device_id__in=ids)
                  .values_list("device_id", "display_name", "data")}  # fmt: skip
    managed_rows = latest_managed(staged.filter(kind=StagedObject.Kind.MANAGED, device_id__in=ids)
                                  .values_list("device_id", "extra", "serial_number", "data"))  # fmt: skip
    stored = {row[0]: row[1:] for row in Device.objects.filter(azure_ad_device_id__in=ids).values_list(
        "azure_ad_device_id", "fingerprint", *STATE_FIELDS)}  # fmt: skip
    report_times = dict(ReadinessReport.objects.filter(azure_ad_device_id__in=ids)
                        .values_list("azure_ad_device_id", "generated_at"))  # fmt: skip
    twins = hybrid_twins(run, [orjson.loads(text) for d, (_, text) in entra_rows.items()
                               if d not in managed_rows and '"trustType":"Workplace"' in text])  # fmt: skip
    pending: dict[str, tuple[str | None, tuple]] = {}
    for device_id, added_through in subjects.items():
        name, entra = entra_rows.get(device_id, ("", None))
        last_sync, serial, managed = managed_rows.get(device_id, (None, "", None))
        if entra is None and device_id not in stored:
            state.errors.append({"stage": "evaluate", "message": f"Device {device_id} is in the group but not in Azure AD."})
            continue
        inputs = (entra, managed, report_times.get(device_id), duplicates.get(serial, 1), name in twins,
                  check_in_bucket(last_sync, now), added_through, in_group, complete)  # fmt: skip
        if device_id in stored and stored[device_id][0] == input_key(*inputs, *stored[device_id][1:]):
            continue
        pending[device_id] = (added_through, inputs)
    if not pending:
        return
    existing = {d.azure_ad_device_id: d for d in Device.objects.filter(azure_ad_device_id__in=pending).defer("checks")}
    reports = {r.azure_ad_device_id: r for r in ReadinessReport.objects.filter(azure_ad_device_id__in=pending)}
    upserts: list[Device] = []
    changes: list[tuple[Device, str, str]] = []
    for device_id, (added_through, inputs) in pending.items():
        record = orjson.loads(entra_rows[device_id][1]) if device_id in entra_rows else None
        managed = orjson.loads(managed_rows[device_id][2]) if device_id in managed_rows else None
        device = existing.get(device_id)
        candidate = c.Candidate(
            entra=record or {"deviceId": device_id, "displayName": device.device_name if device else ""},
            managed=managed, now=now,
            serial_shared_with=duplicates.get(((managed or {}).get("serialNumber") or "").strip(), 1) - 1,
            hybrid_twin=name if (name := (record or {}).get("displayName") or "") in twins else "",
        )  # fmt: skip
        outcome, cause = evaluate_device(candidate, device, reports.get(device_id), added_through, in_group, complete,
                                         rings)  # fmt: skip
        # The key is stored with the state this evaluation leaves, which the next run reads back.
        outcome["fingerprint"] = input_key(*inputs, *(outcome[f] for f in STATE_FIELDS))
        new = Device(azure_ad_device_id=device_id, **outcome)
        if device is not None:
            new.pk, new.first_discovered_at = device.pk, device.first_discovered_at
        upserts.append(new)
        before = device.readiness_status if device else ""
        if before != outcome["readiness_status"]:
            changes.append((new, before, cause))
    with transaction.atomic():
        bulk_write(upserts, unique_field="azure_ad_device_id",
                   update_fields=[f for f in WRITTEN_FIELDS if f != "azure_ad_device_id"])  # fmt: skip
        bulk_write([
            DeviceStatusChange(device_id=d.pk, from_status=before, to_status=d.readiness_status, changed_at=now,
                               cause=cause, run=run)
            for d, before, cause in changes
        ])  # fmt: skip
    state.counts["changed"] += len(upserts)
    state.counts["registered_now"] += sum(1 for d, before, _ in changes if before in ("", ReadinessStatus.PREREQUISITES_FAILED)
                                          and d.registered_at == now)  # fmt: skip


WRITTEN_FIELDS = [
    "azure_ad_device_id", "entra_object_id", "intune_device_id", "device_name", "serial_number", "model",
    "manufacturer", "operating_system", "os_version", "edition", "architecture", "join_type", "management", "owner",
    "primary_user", "last_intune_checkin", "readiness_status", "failed_checks", "checks", "report_generated_at",
    "registered_at", "ring", "ring_assigned_by", "excluded", "added_through", "in_registration_group", "fingerprint",
]  # fmt: skip


def hybrid_twins(run: DiscoveryRun, registered_records: list[dict]) -> set[str]:
    """Names of Azure AD registered records that a hybrid joined record shares (dual state: the same device)."""
    names = {r.get("displayName") for r in registered_records if r.get("displayName")}
    if not names:
        return set()
    return {name for name, data in StagedObject.objects.filter(run=run, kind=StagedObject.Kind.DEVICE,
                                                               display_name__in=names).values_list("display_name", "data")
            if (orjson.loads(data).get("trustType") or "").lower() == "serverad"}  # fmt: skip


def evaluate_device(candidate: c.Candidate, device: Device | None, report: ReadinessReport | None,
                    added_through: str | None, in_group: bool, complete: bool,
                    rings: RingAssigner) -> tuple[dict[str, Any], str]:  # fmt: skip
    """The device's fields after this run, and the cause to record if its readiness status changes."""
    now, m, e = candidate.now, candidate.managed or {}, candidate.entra
    prerequisites = c.evaluate_prerequisites(candidate)
    failed_prerequisites = [r.name for r in prerequisites if not r.passed]
    registered_at = device.registered_at if device else None
    ring = device.ring if device else ""
    ring_by = device.ring_assigned_by if device else ""
    excluded = device.excluded if device else False
    readiness = c.readiness_results(report.checks) if report else []
    last_sync = c.parse_graph_time(m.get("lastSyncDateTime"))
    if excluded:
        status, cause, failed = ReadinessStatus.EXCLUDED, "Excluded by an admin", []
    elif registered_at is None and failed_prerequisites:
        status, failed = ReadinessStatus.PREREQUISITES_FAILED, failed_prerequisites
        cause = "Pre-requisite checks failed: " + "; ".join(failed_prerequisites)
    else:
        if registered_at is None:
            registered_at, ring, ring_by = now, rings.next(), RingAssignedBy.AUTOPATCH
        failed = [r.name for r in readiness if not r.passed]
        if last_sync is None or now - last_sync > c.CHECK_IN_WINDOW:
            status, cause = ReadinessStatus.INACTIVE, "No Intune check-in in the last 28 days"
            failed = [c.LAST_INTUNE_CHECK_IN, *failed]
        elif failed:
            status = ReadinessStatus.READINESS_FAILED
            cause = f"Readiness report of {report.generated_at:%Y-%m-%d %H:%M} UTC: " + "; ".join(failed)
        else:
            status = ReadinessStatus.ACTIVE
            cause = "Registered: every prerequisite check passed" if device is None or device.registered_at is None \
                else "Every readiness check passed"  # fmt: skip
    agent = candidate.agent
    management = (Management.CO_MANAGED if candidate.co_managed else Management.INTUNE if agent in c.INTUNE_AGENTS
                  else Management.NONE)  # fmt: skip
    edition, _ = c.edition_of(candidate)
    fields: dict[str, Any] = {
        "entra_object_id": e.get("id") or (device.entra_object_id if device else ""),
        "intune_device_id": m.get("id") or "",
        "device_name": (e.get("displayName") or m.get("deviceName") or "")[:256],
        "serial_number": (m.get("serialNumber") or "").strip()[:128],
        "model": (m.get("model") or "")[:256],
        "manufacturer": (m.get("manufacturer") or "")[:256],
        "operating_system": (e.get("operatingSystem") or m.get("operatingSystem") or "")[:128],
        "os_version": (m.get("osVersion") or e.get("operatingSystemVersion") or "")[:64],
        "edition": edition,
        "architecture": (m.get("processorArchitecture") or "")[:32],
        "join_type": JOIN_TYPES.get((m.get("joinType") or e.get("trustType") or "").lower(), ""),
        "management": management,
        "owner": {"company": "Corporate", "personal": "Personal"}.get((m.get("ownerType") or "").lower(), ""),
        "primary_user": (m.get("userPrincipalName") or "")[:256],
        "last_intune_checkin": last_sync,
        "readiness_status": status,
        "failed_checks": "; ".join(failed),
        "checks": [r.as_dict() for r in prerequisites + readiness],
        "report_generated_at": report.generated_at if report else None,
        "registered_at": registered_at,
        "ring": ring,
        "ring_assigned_by": ring_by,
        "excluded": excluded,
        "added_through": added_through if added_through is not None else (device.added_through if device else ""),
        "in_registration_group": in_group or bool(device and device.in_registration_group and not complete),
    }
    if device is not None and not candidate.managed and not in_group:
        # Intune no longer knows the device: keep what was last known of its hardware.
        for name in ("intune_device_id", "serial_number", "model", "manufacturer", "architecture", "primary_user", "owner"):
            fields[name] = getattr(device, name)
    return fields, cause
