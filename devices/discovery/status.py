"""The status rules: a device's fields and readiness status after a run, from what the run read (pure)."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from .. import checks as c
from ..models import (
    NOT_REPORTED,
    Device,
    JoinType,
    Management,
    Owner,
    ReadinessReport,
    ReadinessStatus,
    RingAssignedBy,
)
from .rings import RingAssigner

# Intune's joinType, or the Entra record's trustType when Intune does not know the device (lower-cased).
JOIN_TYPES = {
    "azureadjoined": JoinType.AZURE_AD_JOINED,
    "hybridazureadjoined": JoinType.HYBRID_AZURE_AD_JOINED,
    "azureadregistered": JoinType.AZURE_AD_REGISTERED,
    "azuread": JoinType.AZURE_AD_JOINED,
    "serverad": JoinType.HYBRID_AZURE_AD_JOINED,
    "workplace": JoinType.AZURE_AD_REGISTERED,
}
OWNERS = {"company": Owner.CORPORATE, "personal": Owner.PERSONAL}  # Intune's ownerType


class Report(NamedTuple):
    """What the rules read of a readiness report: a ReadinessReport, or these values read without one (with the
    checks' results when the reader has them already: report_of_text)."""

    generated_at: datetime
    checks: list[dict[str, Any]]
    results: tuple[c.CheckResult, ...] | None = None


def readiness_of(report: ReadinessReport | Report) -> list[c.CheckResult]:
    """The results of a report's checks."""
    if isinstance(report, Report) and report.results is not None:
        return list(report.results)
    return c.readiness_results(report.checks)


@lru_cache(maxsize=256)
def report_of_text(checks: str) -> tuple[list[dict[str, Any]], tuple[c.CheckResult, ...]]:
    """A report's checks as stored (JSON text), parsed, with their results: the same for every device whose report
    says the same. Most reports do (the readiness script prints a passed check without detail; 7 different texts
    among 73,000 reports in the bench's tenant), and parsing each device's, then making its results, was about a
    sixth of a first run's evaluation at 100,000 devices. Both are shared: never changed by their readers."""
    parsed = orjson.loads(checks)
    return parsed, tuple(c.readiness_results(parsed))


def evaluate_device(
    candidate: c.Candidate,
    device: Device | None,
    report: ReadinessReport | Report | None,
    added_through: str | None,
    in_group: bool,
    complete: bool,
    rings: RingAssigner,
) -> tuple[dict[str, Any], str]:
    """The device's fields after this run, and the cause to record if its readiness status changes."""
    now, m, e = candidate.now, candidate.managed or {}, candidate.entra
    prerequisites = c.evaluate_prerequisites(candidate)
    failed_prerequisites = [r.name for r in prerequisites if not r.passed]
    registered_at = device.registered_at if device else None
    ring = device.ring if device else ""
    ring_by = device.ring_assigned_by if device else ""
    excluded = device.excluded if device else False
    readiness = readiness_of(report) if report else []
    last_sync = c.parse_graph_time(m.get("lastSyncDateTime"))
    gone_from_intune = device is not None and device.intune_device_id and not m
    reenrolled = bool(
        device is not None
        and device.intune_device_id
        and m.get("id")
        and m.get("id") != device.intune_device_id
    )
    if excluded:
        status, cause, failed = ReadinessStatus.EXCLUDED, "Excluded by an admin", []
    elif registered_at is None and failed_prerequisites:
        status, failed = ReadinessStatus.PREREQUISITES_FAILED, failed_prerequisites
        cause = "Pre-requisite checks failed: " + "; ".join(failed_prerequisites)
    else:
        kept_ring = ""
        if registered_at is None:
            if device is not None and device.ring_before_exclusion:
                # Restored after an exclusion: the ring it had (an admin's Test stays Test).
                ring, ring_by = device.ring_before_exclusion, device.ring_assigned_by_before_exclusion
                kept_ring = f"; ring {ring.title()} kept from before its exclusion"
            else:
                ring, ring_by = rings.next(), RingAssignedBy.AUTOPATCH
            registered_at = now
        failed = [r.name for r in readiness if not r.passed]
        if gone_from_intune and registered_at is not None:
            status = ReadinessStatus.INACTIVE
            cause = (
                "No Intune record any more (wiped, reimaged or retired): it stays registered in ring "
                f"{ring.title() or 'none'} and comes back when it enrolls again with the same Azure AD device ID"
            )
            failed = [c.LAST_INTUNE_CHECK_IN, *failed]
        elif last_sync is None or now - last_sync > c.CHECK_IN_WINDOW:
            status, cause = ReadinessStatus.INACTIVE, "No Intune check-in in the last 28 days"
            failed = [c.LAST_INTUNE_CHECK_IN, *failed]
        elif failed:
            status = ReadinessStatus.READINESS_FAILED
            cause = f"Readiness report of {report.generated_at:%Y-%m-%d %H:%M} UTC: " + "; ".join(failed)
        else:
            # With no report the device stays Active (the seed's definition), but says no check ran yet.
            status = ReadinessStatus.ACTIVE
            cause = "Every readiness check passed" if report else NOT_REPORTED
            if device is None or device.registered_at is None:
                cause = (
                    f"Registered: every prerequisite check passed{kept_ring}; {cause[0].lower()}{cause[1:]}"
                )
        if reenrolled and registered_at is not None:
            before = device.last_intune_checkin if device is not None else None
            since = f" (its last check-in before: {before:%Y-%m-%d %H:%M} UTC)" if before else ""
            cause = (
                f"Enrolled in Intune again with the same Azure AD device ID (a reimage){since}: it stays "
                f"registered, ring {ring.title() or 'none'} kept. {cause}"
            )
    agent = candidate.agent
    management = (
        Management.CO_MANAGED
        if candidate.co_managed
        else Management.INTUNE
        if agent in c.INTUNE_AGENTS
        else Management.NONE
    )
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
        "owner": OWNERS.get((m.get("ownerType") or "").lower(), ""),
        "primary_user": (m.get("userPrincipalName") or "")[:256],
        "last_intune_checkin": last_sync,
        "readiness_status": status,
        "failed_checks": "; ".join(failed),
        "checks": [r.as_stored() for r in prerequisites + readiness],
        "report_generated_at": report.generated_at if report else None,
        "registered_at": registered_at,
        "ring": ring,
        "ring_assigned_by": ring_by,
        "excluded": excluded,
        "added_through": added_through
        if added_through is not None
        else (device.added_through if device else ""),
        "in_registration_group": in_group or bool(device and device.in_registration_group and not complete),
    }
    if gone_from_intune and device is not None:
        # The last Intune ID it had: a new one when it enrolls again says it was reimaged.
        fields["intune_device_id"] = device.intune_device_id
    if device is not None and not candidate.managed and not in_group:
        # Intune no longer knows the device: keep what was last known of its hardware.
        for name in (
            "intune_device_id",
            "serial_number",
            "model",
            "manufacturer",
            "architecture",
            "primary_user",
            "owner",
        ):
            fields[name] = getattr(device, name)
    return fields, cause
