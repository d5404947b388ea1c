"""Ingest device-side readiness reports: kept per device, newest wins, even before registration."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

import orjson
from django.db import IntegrityError
from django.utils import timezone

from .bulk import FEW_ROWS, bulk_write, copy_rows, instance_maker
from .checks import READINESS_CHECKS, kind_of, parse_graph_time
from .models import ReadinessReport

CHUNK = 2000


@dataclass
class IngestResult:
    stored: int = 0
    unchanged: int = 0
    rejected: list[str] = field(default_factory=list)
    stored_ids: list[str] = field(default_factory=list)  # the devices whose report was new


MAX_ID = 64  # the longest Azure AD device ID a device row holds
MAX_REPORT_CHECKS = 50
MAX_DETAIL = 2000
MAX_UTC_OFFSET = timedelta(hours=14)  # no time zone is further from UTC; PostgreSQL refuses a time that is


def validate_report(report: Any) -> str | None:
    """Why a report cannot be taken, or None when it can: the one check for every source (the API, the readiness
    script's output read through Graph, a tenant file), including what a database column cannot hold."""
    return checked(report)[0]


def checked(report: Any) -> tuple[str | None, datetime | None]:
    """validate_report's answer, and the time of a report it takes (ingestion parses it once)."""
    if not isinstance(report, dict):
        return "a report is a JSON object", None
    device_id = report.get("azureADDeviceId")
    if not isinstance(device_id, str) or not device_id:
        return "azureADDeviceId is missing", None
    if len(device_id) > MAX_ID:
        return f"azureADDeviceId is longer than {MAX_ID} characters", None
    if b"\\u0000" in orjson.dumps(report):
        # repr: the ID itself may hold the NUL
        return f"{device_id!r}: a value contains a NUL character", None
    raw_time = report.get("generatedDateTime")
    generated = parse_graph_time(raw_time) if isinstance(raw_time, str) else None
    if generated is None:
        return f"{device_id}: generatedDateTime is not a date and time", None
    offset = generated.utcoffset()
    if offset is None:
        return f"{device_id}: generatedDateTime has no time zone (end it with Z or an offset)", None
    if abs(offset) > MAX_UTC_OFFSET:
        return f"{device_id}: generatedDateTime's offset from UTC is beyond 14 hours", None
    checks = report.get("checks")
    if not isinstance(checks, list) or not checks:
        return f"{device_id}: checks must be a non-empty list", None
    if len(checks) > MAX_REPORT_CHECKS:
        return f"{device_id}: more than {MAX_REPORT_CHECKS} checks", None
    for check in checks:
        if not isinstance(check, dict) or not isinstance(check.get("name"), str):
            return f"{device_id}: a check is an object whose name is text", None
        if check["name"] not in READINESS_CHECKS:
            return (
                f"{device_id}: unknown readiness check {check.get('name') if isinstance(check, dict) else check!r}",
                None,
            )
        if check.get("result") not in ("passed", "failed"):
            return f"{device_id}: result of {check['name']!r} must be 'passed' or 'failed'", None
        detail = check.get("detail")
        if detail is not None and (not isinstance(detail, str) or len(detail) > MAX_DETAIL):
            return f"{device_id}: a check's detail is not text of at most {MAX_DETAIL} characters", None
    return None, generated


def ingest_reports(reports: Iterable[Any], keep_ids: bool = True) -> IngestResult:
    """Store each valid report that is newer than the one kept; a bad report is rejected, not the batch.

    Reports the portal already holds (the same device and time) are only counted: an hourly run over an
    unchanged tenant builds nothing. With keep_ids, the result lists the devices whose report was stored (the API
    applies them at once); a discovery run, which evaluates every device after it, does without the list (73,000
    IDs in a first run at 100,000 devices, read while the tenant's streams are)."""
    result = IngestResult()
    make_report = instance_maker(ReadinessReport)  # a first run builds 73,000 (Model.__init__ took a tenth)
    iterator = iter(reports)
    while chunk := list(islice(iterator, CHUNK)):
        newest: dict[str, tuple[Any, dict]] = {}
        for report in chunk:
            problem, generated = checked(report)
            if problem is not None:
                result.rejected.append(problem)
                continue
            kept = newest.get(report["azureADDeviceId"])
            if kept is None or kept[0] < generated:
                newest[report["azureADDeviceId"]] = (generated, report)
        known = dict(
            ReadinessReport.objects.filter(azure_ad_device_id__any_of=newest).values_list(
                "azure_ad_device_id", "generated_at"
            )
        )
        now = timezone.now()
        # In device ID order, as every write of reports goes: two writers at once (a run, the API) wait for each
        # other's rows in the same order, and never deadlock.
        fresh = sorted(
            (device_id, generated, stored_checks(report["checks"]), now)
            for device_id, (generated, report) in newest.items()
            if device_id not in known or known[device_id] < generated
        )
        written: list[str] = []
        new = [row for row in fresh if row[0] not in known]
        if len(new) > FEW_ROWS:
            # Reports of devices the portal holds none for go into the table as rows: a first run's 73,000 went
            # as instances through a scratch table and an INSERT ... ON CONFLICT (bench/README.md). As instances
            # through bulk.insert_new, which falls back the same way, they took 1.28-1.51 s of the client's CPU, as
            # rows 0.82-0.95 s, in the run's interpreter-bound reading.
            try:
                copy_rows(
                    ReadinessReport,
                    REPORT_COLUMNS,
                    [(d, g, orjson.dumps(c).decode(), t) for d, g, c, t in new],
                )
                written = [row[0] for row in new]
                fresh = [row for row in fresh if row[0] in known]
            except IntegrityError:  # another writer stored a report for one of them meanwhile: upserted below
                pass
        # The read above spares the write of what is known already; the write itself keeps the newest report when
        # another writer (a discovery run, another request) stored one for the same device meanwhile.
        written += [
            r.azure_ad_device_id
            for r in bulk_write(
                [make_report(dict(zip(REPORT_COLUMNS, row, strict=True))) for row in fresh],
                unique_field="azure_ad_device_id",
                update_fields=["generated_at", "checks", "received_at"],
                newer_field="generated_at",
            )
        ]
        result.unchanged += len(newest) - len(written)
        result.stored += len(written)
        if keep_ids:
            result.stored_ids += written
    return result


REPORT_COLUMNS = ("azure_ad_device_id", "generated_at", "checks", "received_at")


def stored_checks(checks: list[dict]) -> list[dict]:
    """Each check's name, result and detail as text; one printed so (as the readiness script prints them, 73,000
    reports in a first run at 100,000 devices) is kept as it is."""
    return [
        c
        if len(c) == 3 and type(c.get("detail")) is str
        else {"name": c["name"], "result": c["result"], "detail": str(c.get("detail") or "")}
        for c in checks
    ]


# -- A report changes the device's readiness status at once (the API's reports) ---------------------------------
# Added after the ingestion above, which it leaves as it is: discovery ingests its tenant's reports and evaluates
# them itself; reports posted to the API are applied here, straight away, with discovery's own status rules.


class _NoNewRings:
    """Only registered devices are re-evaluated here, and the status rules give a ring only to a new one."""

    def next(self) -> str:
        raise AssertionError("a readiness report never registers a device")


def apply_new_reports(device_ids: Iterable[str], since: Any) -> int:
    """Re-evaluate the readiness status of the registered devices among `device_ids` whose report was stored
    since `since`, with discovery's status rules (devices.discovery.status), and write what changed.

    The devices are locked while they are read and written, and each write bumps `state_version`: a discovery
    run that read them before writes none of them over (its write is conditional on the version it read) but
    evaluates them again, report included; an admin action waits for the lock and then sees the new status.
    Unregistered and excluded devices keep their status: the report is kept for them until discovery uses it.
    Returns how many devices were written."""
    # Imported here: discovery imports this module, so importing its status rules at the top would be a cycle.
    from django.db import transaction

    from .bulk import update_rows
    from .checks import Candidate
    from .discovery.status import evaluate_device
    from .models import Device, DeviceStatusChange

    ids = sorted(set(device_ids))
    written = 0
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        with transaction.atomic(savepoint=False):  # within the API's own transaction: no savepoint to set
            reports = {
                r.azure_ad_device_id: r
                for r in ReadinessReport.objects.filter(azure_ad_device_id__in=chunk, received_at__gte=since)
            }
            if not reports:
                continue
            devices = list(
                Device.objects.registered()
                .select_for_update(no_key=True)
                .filter(azure_ad_device_id__in=list(reports))
                .order_by("pk")  # locks in key order, as discovery and the actions take them: no deadlock
            )
            now = timezone.now()
            changed, history = [], []
            for device in devices:
                report = reports[device.azure_ad_device_id]
                checkin = device.last_intune_checkin
                candidate = Candidate(
                    entra={"deviceId": device.azure_ad_device_id, "displayName": device.device_name},
                    managed={"lastSyncDateTime": checkin.isoformat()} if checkin else None,
                    now=now,
                )
                outcome, cause = evaluate_device(
                    candidate,
                    device,
                    report,
                    None,
                    device.in_registration_group,
                    False,
                    _NoNewRings(),  # type: ignore[arg-type]
                )
                # The prerequisite checks are discovery's (they need the whole tenant); the readiness ones are new.
                checks = [c for c in device.checks or [] if kind_of(c) != "readiness"]
                checks += [c for c in outcome["checks"] if kind_of(c) == "readiness"]
                before = device.readiness_status
                new = (
                    outcome["readiness_status"],
                    outcome["failed_checks"],
                    checks,
                    outcome["report_generated_at"],
                )
                if new == (before, device.failed_checks, device.checks, device.report_generated_at):
                    continue
                device.readiness_status, device.failed_checks, device.checks, device.report_generated_at = new
                device.state_version += 1
                changed.append(device)
                if before != device.readiness_status:
                    history.append(
                        DeviceStatusChange(
                            device=device,
                            from_status=before,
                            to_status=device.readiness_status,
                            changed_at=now,
                            cause=cause,
                        )
                    )
            update_rows(
                changed,
                ["readiness_status", "failed_checks", "checks", "report_generated_at", "state_version"],
            )
            DeviceStatusChange.objects.bulk_create(history)
            written += len(changed)
    return written


def ingest_and_apply(reports: list[Any]) -> tuple[IngestResult, int]:
    """Store the reports (ingest_reports) and apply the new ones to their registered devices at once."""
    since = timezone.now()
    result = ingest_reports(reports)
    # Only the reports that were stored: a rejected one's ID may be anything (a NUL, 10,000 characters).
    return result, apply_new_reports(result.stored_ids, since)
