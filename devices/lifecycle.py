"""Device lifecycle beyond discovery: hardware replacements (a new Azure AD device ID for the same machine).

When a motherboard, a non-removable network card or the OS drive is replaced, Entra ID issues a new device ID
(the seed's "Device repair and hardware replacement"): the registered record stops checking in and a new one
appears, which must be added to the registration group. The portal points such pairs out: a device of the
directory copy, in the registration group or not, whose Intune serial number, or display name and model, match
a registered device that stopped checking in before the new one last did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

import orjson
from django.db.models import Q
from django.utils import timezone

from .checks import parse_graph_time
from .models import Device, ObjectKind, TenantObject

# A registered device "stopped checking in" when its last Intune check-in is at least this old.
QUIET_FOR = timedelta(days=1)
# Registered devices looked at per question (the quiet ones, most recently quiet first).
MOST = 500


@dataclass(frozen=True)
class Replacement:
    """A device that may be the new record of a registered device that stopped checking in."""

    replaced: Device
    device_id: str  # the new record's Azure AD device ID
    object_id: str  # its Entra object ID ("" when only Intune knows it)
    name: str
    matched_on: str  # "serial number" or "name and model"
    last_checkin: datetime | None
    in_group: bool  # already a member of the registration group (its portal record says so)

    @property
    def label(self) -> str:
        return f"possible replacement of {self.replaced} (same {self.matched_on})"


class Quiet(NamedTuple):
    """A registered device that went quiet, as read: a model instance is made only for one that matched (500 of
    them loaded as instances cost the group page several milliseconds at every view)."""

    id: int
    azure_ad_device_id: str
    device_name: str
    serial_number: str
    model: str
    last_intune_checkin: datetime | None

    def device(self) -> Device:
        return Device(**self._asdict())


def _quiet_devices(now: datetime) -> dict[str, Quiet]:
    """The registered devices that went quiet, most recently first, by Azure AD device ID."""
    rows = (
        Device.objects.registered()
        .filter(last_intune_checkin__lt=now - QUIET_FOR)
        .order_by("-last_intune_checkin")
        .values_list(*Quiet._fields)[:MOST]
    )
    return {row[1]: Quiet._make(row) for row in rows}


def matched_on(old: Device | Quiet, serial: str, name: str, model: str, synced: datetime | None) -> str:
    """The rule, from both sides: what a record (serial number, name, model, last check-in) shares with a
    registered device that went quiet before it last checked in ("serial number" or "name and model"), or ""."""
    if synced is None or old.last_intune_checkin is None or synced <= old.last_intune_checkin:
        return ""  # the old record checked in after this one: not its successor
    if serial and serial == old.serial_number:
        return "serial number"
    if model and name.lower() == old.device_name.lower() and model == old.model:
        return "name and model"
    return ""


def possible_replacements(device_ids: Iterable[str] | None = None) -> list[Replacement]:
    """Every possible replacement the directory copy shows (or those among `device_ids`), newest first."""
    now = timezone.now()
    quiet = _quiet_devices(now)
    if not quiet:
        return []
    serials = {d.serial_number: d for d in quiet.values() if d.serial_number}
    names = {d.device_name.lower(): d for d in quiet.values() if d.device_name and d.model}
    # The quiet devices' own records share their serial numbers and names: left out before their Intune records
    # are loaded (at 100,000 devices, 1,000 records read and parsed to find none, 68 ms of the group page).
    # (Lists of up to 500 bound as one array each: devices.lookups.)
    others = ~Q(device_id__any_of=list(quiet))
    if device_ids is not None:
        others &= Q(device_id__any_of=list(device_ids))
    managed = TenantObject.objects.filter(others, kind=ObjectKind.MANAGED, group_id="")
    # Name and model: Intune's deviceName and model, read from the records whose Entra name matches.
    named = TenantObject.objects.filter(others, kind=ObjectKind.DEVICE, group_id="").filter(
        display_name__any_of=[d.device_name for d in names.values()]
    )
    rows = list(managed.filter(serial_number__any_of=list(serials)).values_list("device_id", "data"))
    if named_ids := list(named.values_list("device_id", flat=True)):
        rows += managed.filter(device_id__any_of=named_ids).values_list("device_id", "data")
    found: dict[str, Replacement] = {}
    candidates = [(device_id, orjson.loads(data)) for device_id, data in rows]
    if not candidates:
        return []
    objects = dict(
        TenantObject.objects.filter(
            kind=ObjectKind.DEVICE, group_id="", device_id__in=[d for d, _ in candidates]
        ).values_list("device_id", "object_id")
    )
    portal = {
        d.azure_ad_device_id: d
        for d in Device.objects.filter(azure_ad_device_id__in=[d for d, _ in candidates]).only(
            "azure_ad_device_id", "in_registration_group", "registered_at", "excluded"
        )
    }
    for device_id, managed_device in candidates:
        synced = parse_graph_time(managed_device.get("lastSyncDateTime"))
        serial = str(managed_device.get("serialNumber") or "").strip()
        name = str(managed_device.get("deviceName") or "")
        model = str(managed_device.get("model") or "")
        old = serials.get(serial) or names.get(name.lower())
        how = matched_on(old, serial, name, model, synced) if old is not None else ""
        if not how:
            continue
        known = portal.get(device_id)
        if known is not None and known.is_registered:
            continue  # already registered: nothing left to do about it
        found.setdefault(
            device_id,
            Replacement(
                old.device(),
                device_id,
                objects.get(device_id, ""),
                name,
                how,
                synced,
                bool(known and known.in_registration_group),
            ),
        )
    return sorted(found.values(), key=lambda r: r.last_checkin or now, reverse=True)


def replacement_of(device: Device) -> Replacement | None:
    """The registered device this one may replace (for the device's fly-in): the same rule (matched_on) as
    possible_replacements, asked from this device's side, in two indexed queries whatever the tenant's size (the
    whole list took 90 ms at 100,000 devices, on every fly-in); the query only narrows to the devices it may
    match."""
    synced = device.last_intune_checkin
    if device.is_registered or synced is None:
        return None
    same = Q(serial_number=device.serial_number) if device.serial_number else Q(pk__in=[])
    if device.device_name and device.model:
        same |= Q(device_name__iexact=device.device_name, model=device.model)
    old = (
        Device.objects.registered()
        .filter(same, last_intune_checkin__lt=min(synced, timezone.now() - QUIET_FOR))
        .exclude(pk=device.pk)
        .order_by("-last_intune_checkin")
        .first()
    )
    how = matched_on(old, device.serial_number, device.device_name, device.model, synced) if old else ""
    if not how:
        return None
    object_id = (
        TenantObject.objects.filter(kind=ObjectKind.DEVICE, device_id=device.azure_ad_device_id)
        .values_list("object_id", flat=True)
        .first()
    )
    return Replacement(
        old,
        device.azure_ad_device_id,
        object_id or device.entra_object_id,
        device.device_name,
        how,
        synced,
        device.in_registration_group,
    )
