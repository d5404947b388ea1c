"""Reading the tenant into staging rows: members (one level of nesting), devices and managed devices."""

from __future__ import annotations

from django.db import connection

from autopatch_portal.tenant import directory
from autopatch_portal.tenant.connection import TenantConnection
from autopatch_portal.tenant.directory import DEVICE_TYPE, GROUP_TYPE
from autopatch_portal.tenant.graph import GraphError, dumps

from ..bulk import copy_rows
from ..models import DiscoveryRun, StagedObject
from . import records
from .state import RunState


def clear_staging() -> None:
    """Runs never overlap, so every staged row is this run's or a dead run's: TRUNCATE leaves no dead rows."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {StagedObject._meta.db_table}")
    else:  # (TRUNCATE inside a transaction would trip over deferred foreign-key checks)
        StagedObject.objects.all().delete()


def stage_tenant(tenant: TenantConnection, state: RunState) -> None:
    """Read members (one level of nesting), devices and Windows managed devices, page by page."""
    run, graph = state.run, tenant.graph
    group_id = directory.registration_group_id(graph, tenant.registration_group_id)
    nested: list[dict] = []
    state.progress("Reading the registration group")
    for page in directory.member_pages(graph, group_id):
        stage_members(run, page, "direct", state, nested)
    for group in nested:
        name = group.get("displayName") or group["id"]
        state.progress(f"Reading nested group {name}")
        try:
            for page in directory.member_pages(graph, group["id"]):
                stage_members(run, page, name, state, None)
        except GraphError as exc:
            # Its devices are left as they were; the next run reads the group again.
            StagedObject.objects.filter(run=run, kind=StagedObject.Kind.MEMBER, extra=name).delete()
            state.unreadable_groups.append(group["id"])
            state.errors.append({"stage": f"nested group {name}", "message": str(exc)})
    read = 0
    for page in directory.device_pages(graph):
        stage(run, [(StagedObject.Kind.DEVICE, d.get("id") or "", d["deviceId"], (d.get("displayName") or "")[:256],
                     "", "", dumps(d)) for d in records.accept(page, records.DEVICE, state) if d.get("deviceId")])  # fmt: skip
        read += len(page)
        state.progress(f"Read {read} Azure AD devices")
    read = 0
    for page in directory.managed_device_pages(graph):
        stage(run, [(StagedObject.Kind.MANAGED, m.get("id") or "", m["azureADDeviceId"], "",
                     (m.get("serialNumber") or "").strip()[:128], (m.get("lastSyncDateTime") or "")[:256], dumps(m))
                    for m in records.accept(page, records.MANAGED, state) if m.get("azureADDeviceId")])  # fmt: skip
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
    for member in records.accept(page, records.MEMBER, state):
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
