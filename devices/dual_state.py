"""Dual state: devices with two Entra records, one hybrid Azure AD joined and one Azure AD registered.

The seed ("Clean up dual state of Hybrid Azure AD joined and Azure registered devices"): when a device first
registered in Entra ID (trustType Workplace) is later hybrid joined (trustType ServerAd), it has two records; the
hybrid joined one takes precedence, which makes the Azure AD registered one stale. The stale record is not
enrolled in Intune, so in the registration group it fails "Intune or Cloud-Attached". The records are paired by
display name (Entra keeps no other link between them), from the portal's copy of the tenant's device records.
One function feeds the page, its CSV export and `manage.py export_dual_state`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import orjson

from autopatch_portal.csvfile import LineWriter

from .checks import INTUNE_OR_CLOUD_ATTACHED
from .models import AZURE_AD_REGISTERED, AZURE_AD_REGISTERED_TRUST, Device, ObjectKind, TenantObject

STALE_TRUST, CURRENT_TRUST = AZURE_AD_REGISTERED_TRUST, "ServerAd"
HEADER = (
    "Device name",
    "Stale Azure AD device ID",
    "Stale object ID",
    "Stale record in the registration group",
    "Stale record's readiness status",
    "Current Azure AD device ID",
    "Current object ID",
    "Current record in the registration group",
    "What to do",
)


@dataclass(frozen=True)
class DualState:
    name: str
    stale_device_id: str
    stale_object_id: str
    stale_in_group: bool
    stale_status: str  # the stale record's readiness status in the portal, if discovery evaluated it
    current_device_id: str
    current_object_id: str
    current_in_group: bool

    @property
    def advice(self) -> str:
        text = (
            f"Delete the stale Azure AD registered record (device ID {self.stale_device_id}) in Microsoft Entra "
            "ID; the hybrid Azure AD joined record is the one enrolled in Intune."
        )
        if self.stale_in_group:
            text += f" Until then it fails {INTUNE_OR_CLOUD_ATTACHED!r}."
        if not self.current_in_group:
            text += " Add the hybrid joined record to the registration group."
        return text

    def cells(self) -> tuple[str, ...]:
        yes = {True: "Yes", False: "No"}
        return (
            self.name,
            self.stale_device_id,
            self.stale_object_id,
            yes[self.stale_in_group],
            self.stale_status,
            self.current_device_id,
            self.current_object_id,
            yes[self.current_in_group],
            self.advice,
        )


def _trust(data: str) -> str:
    return str(orjson.loads(data).get("trustType") or "") if data else ""


def dual_state_devices() -> Iterator[DualState]:
    """Every pair of records in dual state, by device name."""
    copy = TenantObject.objects.filter(kind=ObjectKind.DEVICE, group_id="").exclude(display_name="")
    registered = copy.filter(AZURE_AD_REGISTERED)
    hybrid = {
        name: (device_id, object_id)
        for name, device_id, object_id, data in copy.filter(
            display_name__in=registered.values("display_name"),
            data__contains=f'"trustType":"{CURRENT_TRUST}"',
        )
        .order_by("display_name", "object_id")
        .values_list("display_name", "device_id", "object_id", "data")
        if _trust(data) == CURRENT_TRUST
    }
    stale = [
        (name, device_id, object_id)
        for name, device_id, object_id, data in registered.filter(display_name__in=list(hybrid))
        .order_by("display_name", "object_id")
        .values_list("display_name", "device_id", "object_id", "data")
        if _trust(data) == STALE_TRUST
    ]
    ids = [device_id for _, device_id, _ in stale] + [h[0] for h in hybrid.values()]
    portal = {
        device_id: (in_group, status)
        for device_id, in_group, status in Device.objects.filter(azure_ad_device_id__in=ids).values_list(
            "azure_ad_device_id", "in_registration_group", "readiness_status"
        )
    }
    labels = dict(Device._meta.get_field("readiness_status").choices or [])
    for name, device_id, object_id in stale:
        current_id, current_object = hybrid[name]
        stale_in, stale_status = portal.get(device_id, (False, ""))
        yield DualState(
            name,
            device_id,
            object_id,
            stale_in,
            str(labels.get(stale_status, "")),
            current_id,
            current_object,
            portal.get(current_id, (False, ""))[0],
        )


def dual_state_csv() -> Iterator[str]:
    """The report as CSV lines, through the portal's one CSV writer."""
    writer = LineWriter()
    yield writer.header(HEADER)
    for item in dual_state_devices():
        yield writer.row(item.cells())
