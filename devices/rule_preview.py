"""Rule preview: which devices of the directory a dynamic membership rule matches, and how each would fare in the
prerequisite checks if the rule's group were nested in the registration group.

It reads the portal's copy of the tenant that discovery keeps (TenantObject rows of Entra devices and Intune
managed devices, with their Graph JSON), so a preview asks nothing of Microsoft Graph; the page, the CSV and
`manage.py preview_rule` all call preview().
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import orjson
from django.db.models import Max
from django.utils import timezone

from autopatch_portal.csvfile import LineWriter
from autopatch_portal.tenant import membership_rules

from . import checks as c
from .discovery.evaluation import latest_managed
from .discovery.reading import DEVICES
from .models import DeltaLink, Device, ObjectKind, ReadinessStatus, TenantObject

CSV_COLUMNS = (
    "Device name",
    "Azure AD device ID",
    "Object ID",
    "Operating system",
    "Multi-session host",
    "Would register",
    "Failed checks",
    "Reasons",
)


@dataclass(frozen=True)
class PreviewRow:
    device_name: str
    azure_ad_device_id: str
    object_id: str
    operating_system: str
    checks: tuple[c.CheckResult, ...]
    multi_session: bool  # an Azure Virtual Desktop multi-session host, which Autopatch refuses
    readiness_status: str  # the portal's readiness status (its label), "" when discovery has not evaluated it

    @property
    def failed(self) -> list[c.CheckResult]:
        return [check for check in self.checks if not check.passed]

    @property
    def would_register(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class Preview:
    rule: str
    rows: list[PreviewRow]
    directory_devices: int  # how many Entra devices the copy holds
    read_at: datetime | None  # when discovery last read the devices

    @property
    def would_register(self) -> int:
        return sum(row.would_register for row in self.rows)

    @property
    def multi_session_hosts(self) -> list[PreviewRow]:
        return [row for row in self.rows if row.multi_session]


def preview(rule: str, now: datetime | None = None) -> Preview:
    """The rule's matches among the directory's devices, each with its prerequisite checks; RuleError (with the
    position) for a rule Entra would refuse."""
    parsed = membership_rules.parse(rule)
    now = now or timezone.now()
    records = [
        orjson.loads(data)
        for data in TenantObject.objects.filter(kind=ObjectKind.DEVICE).values_list("data", flat=True)
        if data
    ]
    matched = [r for r in parsed.filter(records) if isinstance(r.get("deviceId"), str) and r["deviceId"]]
    # Whole tables, filtered here: a rule such as `device.objectId -ne null` matches every device, more IDs
    # than a query may name.
    ids = {r["deviceId"] for r in matched}
    managed = {
        device_id: orjson.loads(data)
        for device_id, (_, _, data) in latest_managed(
            row
            for row in TenantObject.objects.filter(kind=ObjectKind.MANAGED).values_list(
                "device_id", "extra", "serial_number", "data"
            )
            if row[0] in ids
        ).items()
    }
    serials = shared_serials(matched, managed)
    hybrid_names = {
        r.get("displayName") for r in records if str(r.get("trustType") or "").lower() == "serverad"
    }
    statuses = {
        device_id: ReadinessStatus(status).label
        for device_id, status in Device.objects.values_list("azure_ad_device_id", "readiness_status")
        if device_id in ids
    }
    rows = []
    for record in matched:
        device_id = record["deviceId"]
        item = managed.get(device_id)
        name = str(record.get("displayName") or "")
        serial = str((item or {}).get("serialNumber") or "").strip()
        candidate = c.Candidate(
            entra=record,
            managed=item,
            now=now,
            serial_shared_with=serials.get(serial, 1) - 1 if serial else 0,
            hybrid_twin=name
            if item is None
            and str(record.get("trustType") or "").lower() == "workplace"
            and name in hybrid_names
            else "",
        )
        rows.append(
            PreviewRow(
                device_name=name,
                azure_ad_device_id=device_id,
                object_id=str(record.get("id") or ""),
                operating_system=str(record.get("operatingSystem") or ""),
                checks=tuple(c.evaluate_prerequisites(candidate)),
                multi_session=c.is_multi_session(candidate),
                readiness_status=statuses.get(device_id, ""),
            )
        )
    rows.sort(key=lambda row: (row.device_name.casefold(), row.azure_ad_device_id))
    read_at = DeltaLink.objects.filter(name=DEVICES).aggregate(at=Max("read_at"))["at"]
    return Preview(rule, rows, len(records), read_at)


def shared_serials(matched: list[dict], managed: dict[str, dict]) -> dict[str, int]:
    """How many devices hold each serial number among the matches and the registered devices, as discovery
    counts them for "Unique serial number"."""
    holders: dict[str, set[str]] = {}
    for record in matched:
        serial = str((managed.get(record["deviceId"]) or {}).get("serialNumber") or "").strip()
        if serial:
            holders.setdefault(serial, set()).add(record["deviceId"])
    if holders:
        registered = Device.objects.registered().exclude(serial_number="")
        for serial, device_id in registered.values_list("serial_number", "azure_ad_device_id"):
            if serial in holders:
                holders[serial].add(device_id)
    return Counter({serial: len(ids) for serial, ids in holders.items()})


def csv_lines(result: Preview) -> Iterator[str]:
    """The preview as CSV lines, through the exports' line writer."""
    writer = LineWriter()
    yield writer.header(CSV_COLUMNS)
    for row in result.rows:
        yield writer.row(
            (
                row.device_name,
                row.azure_ad_device_id,
                row.object_id,
                row.operating_system,
                "Yes" if row.multi_session else "No",
                "Yes" if row.would_register else "No",
                "; ".join(check.name for check in row.failed),
                " | ".join(check.reason for check in row.failed),
            )
        )
