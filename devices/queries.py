"""The device list of a tab, searched, filtered and sorted: shared by the tabs, the export, the command and the API."""

from __future__ import annotations

from collections.abc import Mapping

from django.db.models import Q, QuerySet

from .columns import COLUMNS_BY_KEY
from .models import TAB_STATUSES, Device, Tab


class InvalidQuery(ValueError):
    """A parameter that names no tab, column or filter value: a clear 400, never a guess."""


TAB_ALL = "all"


def tab_devices(tab: str) -> QuerySet[Device]:
    if tab == TAB_ALL:
        return Device.objects.all()
    if tab not in TAB_STATUSES:
        raise InvalidQuery(f"unknown tab {tab!r}: use one of {', '.join([*Tab.values, TAB_ALL])}")
    return Device.objects.filter(readiness_status__in=TAB_STATUSES[tab])


def device_list(tab: str, params: Mapping[str, str] | None = None) -> QuerySet[Device]:
    """The devices a tab shows for the given search (q) and sort (sort=key or -key)."""
    params = params or {}
    devices = tab_devices(tab)
    q = (params.get("q") or "").strip()
    if q:
        devices = devices.filter(
            Q(device_name__icontains=q) | Q(azure_ad_device_id__iexact=q) | Q(serial_number__iexact=q)
            | Q(primary_user__icontains=q)
        )  # fmt: skip
    sort = params.get("sort") or "device_name"
    key = sort.removeprefix("-")
    column = COLUMNS_BY_KEY.get(key)
    if column is None or not column.sortable:
        raise InvalidQuery(f"cannot sort by {sort!r}")
    prefix = "-" if sort.startswith("-") else ""
    return devices.order_by(f"{prefix}{column.field}", f"{prefix}pk")
