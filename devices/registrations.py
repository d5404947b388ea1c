"""Registration by Azure AD device ID, on behalf of a provisioning service (Windows 365), without the group.

The seed: Windows 365 provisioning "calls Windows Autopatch device registration APIs to register devices on
behalf of the IT admin". The prerequisite checks run at once on the portal's copy of the tenant (the Entra and
Intune records discovery keeps in TenantObject), with the same checks and status rules as a discovery run. A
device registered this way is not in the registration group; discovery keeps it registered, as it keeps every
registered device that is not (or no longer) in the group, and its "Added through" says "API".
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import orjson
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from autopatch_portal.tenant import directory
from autopatch_portal.tenant.connection import connect
from autopatch_portal.tenant.graph import GraphError
from autopatch_portal.tenant.simulated import TenantFileError

from . import checks as c
from .bulk import bulk_write
from .discovery.evaluation import WRITTEN_FIELDS, latest_managed
from .discovery.rings import RingAssigner
from .discovery.status import evaluate_device
from .models import Device, DeviceStatusChange, ObjectKind, ReadinessReport, TenantObject

GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
MAX_DEVICES = 1000  # per request
DIRECTORY_READS = (
    20  # devices a request reads from the tenant (two Graph requests each) when the copy lacks them
)
API_REGISTRATION = "api"  # Device.added_through of a device registered through the API

REGISTERED = "registered"
ALREADY_REGISTERED = "alreadyRegistered"
NOT_REGISTERED = "notRegistered"


@dataclass
class Registration:
    """What became of one device ID."""

    azure_ad_device_id: str
    result: str
    message: str
    device: Device | None = None
    failed_checks: list[dict] = field(default_factory=list)


def records(device_ids: list[str]) -> tuple[dict[str, dict], dict[str, dict], dict[str, str]]:
    """The Entra and Intune records of these devices: from the portal's copy of the tenant, and for devices the
    copy does not hold yet (a Cloud PC provisioned since the last discovery), read from the tenant through the
    directory, at most DIRECTORY_READS a request. Also, per device, why it could not be read."""
    copy = TenantObject.objects.filter(device_id__in=device_ids)
    entra = {
        d: orjson.loads(data)
        for d, data in copy.filter(kind=ObjectKind.DEVICE).values_list("device_id", "data")
        if data
    }
    managed = {
        d: orjson.loads(data)
        for d, (_, _, data) in latest_managed(
            copy.filter(kind=ObjectKind.MANAGED).values_list("device_id", "extra", "serial_number", "data")
        ).items()
        if data
    }
    unread: dict[str, str] = {}
    missing = [d for d in device_ids if d not in entra]
    if missing:
        try:
            graph = connect().graph
        except (GraphError, TenantFileError) as exc:
            return entra, managed, {d: f"The tenant could not be read: {exc}" for d in missing}
        for index, device_id in enumerate(missing):
            if index >= DIRECTORY_READS:
                unread[device_id] = (
                    f"Not in the portal's copy of the tenant, and at most {DIRECTORY_READS} devices a request "
                    "are read from the tenant: send it again after the next discovery run, or in a smaller request."
                )
                continue
            try:
                record, intune = directory.device_records(graph, device_id)
            except GraphError as exc:
                unread[device_id] = f"The tenant could not be read: {exc}"
                continue
            if record is None:
                unread[device_id] = "No Entra ID device has this device ID."
                continue
            entra[device_id] = record
            if intune:
                managed[device_id] = max(intune, key=lambda m: m.get("lastSyncDateTime") or "")
    return entra, managed, unread


def shared_serials(managed: dict[str, dict]) -> Counter[str]:
    """How many registered devices, and devices of this request, hold each serial number of the request."""
    serial_of = {d: (m.get("serialNumber") or "").strip() for d, m in managed.items()}
    serials = {s for s in serial_of.values() if s}
    held = Counter(
        Device.objects.registered()
        .filter(serial_number__in=serials)
        .exclude(azure_ad_device_id__in=list(managed))
        .values_list("serial_number", flat=True)
    )
    held.update(s for s in serial_of.values() if s)
    return held


@transaction.atomic
def register(device_ids: list[str], actor: str) -> list[Registration]:
    """Register each device that passes every prerequisite check; one answer per ID, in the order given."""
    ids = list(dict.fromkeys(device_ids))
    existing = {
        d.azure_ad_device_id: d
        for d in Device.objects.select_for_update(no_key=True)
        .filter(azure_ad_device_id__in=ids)
        .order_by("pk")
    }
    malformed = {i for i in ids if not GUID.fullmatch(i)}
    entra, managed, unread = records(
        [i for i in ids if not (i in existing and (existing[i].is_registered or existing[i].excluded))]
    )
    serials = shared_serials(managed)
    reports = {r.azure_ad_device_id: r for r in ReadinessReport.objects.filter(azure_ad_device_id__in=ids)}
    now = timezone.now()
    answers: dict[str, Registration] = {}
    passing: list[tuple[str, c.Candidate]] = []
    for device_id in ids:
        device = existing.get(device_id)
        if device is not None and device.is_registered:
            answers[device_id] = Registration(
                device_id,
                ALREADY_REGISTERED,
                f"Already registered, in the {device.get_ring_display()} ring.",
                device,
            )
            continue
        if device is not None and device.excluded:
            answers[device_id] = Registration(
                device_id, NOT_REGISTERED, "Excluded by an admin: restore it in the portal first.", device
            )
            continue
        if device_id in malformed and device is None:
            answers[device_id] = Registration(
                device_id, NOT_REGISTERED, "Not an Azure AD device ID: Entra ID device IDs are GUIDs."
            )
            continue
        if device_id not in entra:
            answers[device_id] = Registration(
                device_id, NOT_REGISTERED, unread.get(device_id, "No Entra ID device has this device ID.")
            )
            continue
        m = managed.get(device_id)
        serial = ((m or {}).get("serialNumber") or "").strip()
        candidate = c.Candidate(
            entra=entra[device_id],
            managed=m,
            now=now,
            serial_shared_with=serials.get(serial, 1) - 1 if serial else 0,
        )
        failures = [r for r in c.evaluate_prerequisites(candidate) if not r.passed]
        if failures:
            answers[device_id] = Registration(
                device_id,
                NOT_REGISTERED,
                "Pre-requisite checks failed: " + "; ".join(r.name for r in failures),
                device,
                [{"name": r.name, "reason": r.reason, "remediation": r.remediation} for r in failures],
            )
            continue
        passing.append((device_id, candidate))
    if passing:
        rings = RingAssigner(Device.objects.registered().count() + len(passing))
        upserts, causes = [], {}
        for device_id, candidate in passing:
            device = existing.get(device_id)
            in_group = bool(device and device.in_registration_group)
            outcome, cause = evaluate_device(
                candidate,
                device,
                reports.get(device_id),
                None if in_group else API_REGISTRATION,
                in_group,
                False,
                rings,
            )
            outcome["fingerprint"] = ""  # the next discovery run evaluates it with the whole tenant
            new = Device(azure_ad_device_id=device_id, **outcome)
            if device is not None:
                new.pk, new.first_discovered_at = device.pk, device.first_discovered_at
                new.state_version = device.state_version
            upserts.append(new)
            causes[device_id] = (
                device.readiness_status if device else "",
                f"Registered through the API by {actor}: {cause}",
            )
        upserts.sort(key=lambda d: d.pk or 0)
        written = bulk_write(
            upserts,
            unique_field="azure_ad_device_id",
            version_field="state_version",
            update_fields=[f for f in WRITTEN_FIELDS if f != "azure_ad_device_id"],
        )
        # A discovery run that read these devices before must not write them back as unregistered.
        Device.objects.filter(pk__in=[d.pk for d in written]).update(state_version=F("state_version") + 1)
        DeviceStatusChange.objects.bulk_create(
            [
                DeviceStatusChange(
                    device_id=d.pk,
                    from_status=causes[d.azure_ad_device_id][0],
                    to_status=d.readiness_status,
                    changed_at=now,
                    cause=causes[d.azure_ad_device_id][1][:2000],
                )
                for d in written
            ]
        )
        kept = {d.azure_ad_device_id: d for d in written}
        for device_id, _ in passing:
            if device_id in kept:
                d = kept[device_id]
                answers[device_id] = Registration(
                    device_id, REGISTERED, f"Registered, in the {d.get_ring_display()} ring.", d
                )
            else:
                answers[device_id] = Registration(
                    device_id,
                    NOT_REGISTERED,
                    "An admin changed the device meanwhile; try again.",
                    existing.get(device_id),
                )
    return [answers[d] for d in ids]
