"""Dual state: devices with two Entra records, one hybrid Azure AD joined and one Azure AD registered.

The seed ("Clean up dual state of Hybrid Azure AD joined and Azure registered devices"): when a device first
registered in Entra ID (trustType Workplace) is later hybrid joined (trustType ServerAd), it has two records; the
hybrid joined one takes precedence, which makes the Azure AD registered one stale. The stale record is not
enrolled in Intune, so in the registration group it fails "Intune or Cloud-Attached". The records are paired by
display name (Entra keeps no other link between them), from the portal's copy of the tenant's device records.
One function reads the pairs for the page, its CSV export and `manage.py export_dual_state`; the page shows them 50
at a time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import orjson
from django.core.paginator import Page, Paginator

from autopatch_portal.csvfile import LineWriter

from .checks import INTUNE_OR_CLOUD_ATTACHED
from .copy_cache import last_finished_run, read_for_last_run
from .models import (
    AZURE_AD_REGISTERED,
    AZURE_AD_REGISTERED_TRUST,
    Device,
    DiscoveryRun,
    ObjectKind,
    TenantObject,
)

STALE_TRUST, CURRENT_TRUST = AZURE_AD_REGISTERED_TRUST, "ServerAd"
PAGE_SIZE = 50  # pairs a page shows (1,005 at 100,000 devices in the bench's tenant)
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


@dataclass(frozen=True)
class Pair:
    """Two Entra records of one device, as the copy of the tenant holds them."""

    name: str
    stale_device_id: str
    stale_object_id: str
    current_device_id: str
    current_object_id: str


def dual_state_pairs() -> list[Pair]:
    """Every pair of records in dual state in the portal's copy of the tenant, by device name."""
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
    return [
        Pair(name, device_id, object_id, *hybrid[name])
        for name, device_id, object_id, data in registered.filter(display_name__in=list(hybrid))
        .order_by("display_name", "object_id")
        .values_list("display_name", "device_id", "object_id", "data")
        if _trust(data) == STALE_TRUST
    ]


def with_portal_state(pairs: Sequence[Pair]) -> list[DualState]:
    """The pairs with what the portal knows of their records now: in the registration group, readiness status."""
    ids = [p.stale_device_id for p in pairs] + [p.current_device_id for p in pairs]
    portal = {
        device_id: (in_group, status)
        for device_id, in_group, status in Device.objects.filter(azure_ad_device_id__any_of=ids).values_list(
            "azure_ad_device_id", "in_registration_group", "readiness_status"
        )
    }
    labels = dict(Device._meta.get_field("readiness_status").choices or [])
    states = []
    for p in pairs:
        stale_in, stale_status = portal.get(p.stale_device_id, (False, ""))
        states.append(
            DualState(
                p.name,
                p.stale_device_id,
                p.stale_object_id,
                stale_in,
                str(labels.get(stale_status, "")),
                p.current_device_id,
                p.current_object_id,
                portal.get(p.current_device_id, (False, ""))[0],
            )
        )
    return states


def dual_state_devices() -> list[DualState]:
    """Every pair of records in dual state, by device name, with the portal's state of each record."""
    return with_portal_state(dual_state_pairs())


def pairs_of_run(last_run: DiscoveryRun | None) -> list[Pair]:
    """dual_state_pairs(), read once for the run that ended last (the copy changes only in a run): the report's
    pages and the registration group page share the reading."""
    return read_for_last_run("dual-state", dual_state_pairs, last_run)


class PairsOfRun(Sequence[Pair]):
    """pairs_of_run() as the report's pages read it: its length and each slice asked for, each kept in the cache
    for the run that ended last. Loading all the pairs on every view (1,005 at 100,000 devices) took 3 ms, a third
    of the page, where one page of them takes a tenth of that."""

    def __init__(self, last_run: DiscoveryRun | None):
        self.last_run = last_run
        self.length = read_for_last_run("dual-state:count", lambda: len(pairs_of_run(last_run)), last_run)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index):  # slices only, as Paginator takes them
        start, stop, _ = index.indices(self.length)
        return read_for_last_run(
            f"dual-state:{start}:{stop}", lambda: pairs_of_run(self.last_run)[start:stop], self.last_run
        )


def dual_state_page(number: int, per_page: int = PAGE_SIZE) -> tuple[Page, list[DualState]]:
    """One page of the report: the pairs as the run that ended last read them, the portal's state read for the
    page's records alone. A number past the end gives the last page."""
    page = Paginator(PairsOfRun(last_finished_run()), per_page).get_page(number)
    return page, with_portal_state(list(page.object_list))


def dual_state_csv() -> Iterator[str]:
    """The report as CSV lines, through the portal's one CSV writer."""
    writer = LineWriter()
    yield writer.header(HEADER)
    for item in dual_state_devices():
        yield writer.row(item.cells())
