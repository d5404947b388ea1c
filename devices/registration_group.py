"""The registration group as admins manage it: its members, nested groups and owners, its health, and adding devices.

What the page shows comes from the portal's copy of the tenant that discovery keeps (TenantObject: the group's
members and those of the groups nested in it, every Entra device record) and from three Graph reads made when the
page opens (the group, its nested groups with the properties that say their kind, its owners: see
autopatch_portal.tenant.directory). Adding devices goes through Graph; the next discovery finds them.

Kinds of nested groups, as Graph reports them (api-reference/v1.0/resources/group.md): "DynamicMembership" in
groupTypes is a dynamic group (its membershipRule is shown); onPremisesSyncEnabled true is a group synced from
on-premises Active Directory; otherwise an assigned group. A Configuration Manager collection synced to Entra ID
fills an ordinary cloud group that Graph does not mark (configmgr's "Synchronize collection membership results to
Microsoft Entra groups"): the portal recognises one only by convention, when its name or description mentions
Configuration Manager (ConfigMgr, SCCM, MECM) or a collection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Count

from autopatch_portal.tenant import directory
from autopatch_portal.tenant.connection import TenantConnection
from autopatch_portal.tenant.directory import DEVICE_TYPE, GROUP_TYPE
from autopatch_portal.tenant.graph import GraphError

from .copy_cache import last_finished_run, read_for_last_run
from .dual_state import PAGE_SIZE as DUAL_STATE_PAGE
from .dual_state import PairsOfRun, pairs_of_run, with_portal_state
from .lifecycle import Replacement, possible_replacements
from .models import Device, DiscoveryRun, ObjectKind, TenantObject

MEMBERS_SHOWN = 200
OUTSIDE_SHOWN = 200
CONFIGMGR = re.compile(r"configuration manager|configmgr|\bsccm\b|\bmecm\b|\bcollection\b", re.IGNORECASE)


@dataclass(frozen=True)
class GroupKind:
    label: str
    rule: str = ""
    configmgr: bool = False


def kind_of(group: dict[str, Any]) -> GroupKind:
    """A group's kind from Graph's properties (see the module's note)."""
    text = f"{group.get('displayName') or ''} {group.get('description') or ''}"
    configmgr = bool(CONFIGMGR.search(text))
    if "DynamicMembership" in (group.get("groupTypes") or []):
        return GroupKind("Dynamic", str(group.get("membershipRule") or ""), configmgr)
    if group.get("onPremisesSyncEnabled"):
        return GroupKind("Synced from on-premises Active Directory", configmgr=configmgr)
    if configmgr:
        return GroupKind("Configuration Manager collection sync", configmgr=True)
    return GroupKind("Assigned")


@dataclass(frozen=True)
class Member:
    object_id: str
    name: str
    device_id: str
    status: str  # the device's readiness status in the portal ("" before discovery evaluated it)


@dataclass(frozen=True)
class NestedGroup:
    object_id: str
    name: str
    kind: GroupKind
    devices: int | None  # device members in the copy; None: discovery has not read the group yet


@dataclass(frozen=True)
class Finding:
    """Something about the group an admin should act on."""

    title: str
    detail: str
    items: tuple[str, ...] = ()
    link: str = ""  # URL name of the page that says more


@dataclass(frozen=True)
class Pickable:
    """A device record of the directory copy that no group discovery follows holds: one an admin may add."""

    object_id: str
    name: str
    device_id: str
    status: str  # its readiness status in the portal, if it was ever discovered


def outside_rows(search: str = "") -> tuple[tuple[str, str, str], ...]:
    """Entra device records with a device ID that are not members of the registration group or of a group nested
    in it (the first OUTSIDE_SHOWN by name, or those whose name starts with `search`): (object ID, name, device ID)."""
    members = TenantObject.objects.filter(kind=ObjectKind.MEMBER).values("object_id")
    records = (
        TenantObject.objects.filter(kind=ObjectKind.DEVICE, group_id="")
        .exclude(device_id="")
        .exclude(object_id__in=members)
    )
    if search:
        records = records.filter(display_name__istartswith=search)
    return tuple(
        records.order_by("display_name").values_list("object_id", "display_name", "device_id")[:OUTSIDE_SHOWN]
    )


def status_labels(device_ids: list[str]) -> dict[str, str]:
    """The portal's readiness status of each device it knows among `device_ids`, as the blade names it."""
    labels = dict(Device._meta.get_field("readiness_status").choices or [])
    return {
        device_id: str(labels.get(status, ""))
        for device_id, status in Device.objects.filter(azure_ad_device_id__any_of=device_ids).values_list(
            "azure_ad_device_id", "readiness_status"
        )
    }


@dataclass
class GroupOverview:
    group_id: str
    name: str
    kind: GroupKind | None
    members: list[Member]
    member_count: int
    nested: list[NestedGroup]
    owners: list[dict[str, Any]]
    findings: list[Finding]
    replacements: list[Replacement]
    outside: list[Pickable]  # devices of the directory copy outside the group (to pick from)
    last_run: DiscoveryRun | None
    problems: list[str] = field(default_factory=list)  # Graph reads that failed

    def is_owner(self, object_id: str) -> bool:
        return any(o.get("id") == object_id for o in self.owners)


def copied_group_id() -> str:
    """The registration group's ID as discovery last saw it: the group of the copy that is nobody's member."""
    nested = TenantObject.objects.filter(kind=ObjectKind.MEMBER, extra=GROUP_TYPE).values("object_id")
    return (
        TenantObject.objects.filter(kind=ObjectKind.GROUP)
        .exclude(object_id__in=nested)
        .values_list("object_id", flat=True)
        .first()
        or ""
    )


def group_id_of(tenant: TenantConnection) -> str:
    return directory.registration_group_id(tenant.graph, tenant.registration_group_id)


@dataclass(frozen=True)
class CopyView:
    """What the page reads from the portal's copy of the tenant (and the devices' group membership), which only a
    discovery run changes: read once after each run (copy_view), not on every view. At 100,000 devices these reads
    took 0.3 to 0.5 s a view (the members without a device ID, the devices outside the group and the dual state
    pairs each pass over every member or record)."""

    names: dict[str, str]  # the copy's groups, by object ID
    device_counts: dict[str, int]  # device members, by group
    nested_ids: tuple[str, ...]  # groups nested in the registration group, as discovery read them
    member_count: int  # the registration group's direct device members
    direct: tuple[tuple[str, str, str], ...]  # the first MEMBERS_SHOWN of them: (object ID, name, device ID)
    outside: tuple[tuple[str, str, str], ...]  # outside_rows()
    deep: tuple[tuple[str, str, str], ...]  # groups nested two levels down: (parent, object ID, name)
    others: tuple[str, ...]  # members that are not devices, described
    no_id: tuple[str, ...]  # device members without an Entra device ID, described
    dual: tuple[str, ...]  # stale records in dual state in the group, described
    dual_count: int


def read_copy(group_id: str, last_run: DiscoveryRun | None) -> CopyView:
    copy = TenantObject.objects
    names = dict(copy.filter(kind=ObjectKind.GROUP).values_list("object_id", "display_name"))
    members_of = copy.filter(kind=ObjectKind.MEMBER)
    direct = members_of.filter(group_id=group_id, extra=DEVICE_TYPE)
    others = tuple(
        f"{member_name or object_id} ({extra.rsplit('.', 1)[-1] or 'object'}, in "
        f"{'the registration group' if parent == group_id else names.get(parent, parent)})"
        for parent, object_id, member_name, extra in copy.not_devices()
        .order_by("group_id", "display_name")
        .values_list("group_id", "object_id", "display_name", "extra")[:MEMBERS_SHOWN]
    )
    no_id = list(copy.without_device_id().values_list("object_id", flat=True)[:MEMBERS_SHOWN])
    named = dict(
        copy.filter(kind=ObjectKind.DEVICE, group_id="", object_id__in=no_id).values_list(
            "object_id", "display_name"
        )
    )
    dual = [d for d in with_portal_state(pairs_of_run(last_run)) if d.stale_in_group]
    return CopyView(
        names=names,
        device_counts=dict(
            members_of.filter(extra=DEVICE_TYPE)
            .values("group_id")
            .annotate(n=Count("*"))  # not the key: the member index alone answers
            .values_list("group_id", "n")
        ),
        nested_ids=tuple(
            members_of.filter(group_id=group_id, extra=GROUP_TYPE).values_list("object_id", flat=True)
        ),
        member_count=direct.count(),
        direct=direct_rows(group_id),
        outside=outside_rows(),
        deep=tuple(
            copy.nested_too_deep(group_id)
            .order_by("group_id", "display_name")
            .values_list("group_id", "object_id", "display_name")
        ),
        others=others,
        no_id=tuple(
            f"{named[object_id]} ({object_id})" if named.get(object_id) else f"{object_id} (not in Entra ID)"
            for object_id in no_id
        ),
        dual=tuple(f"{d.name} ({d.stale_device_id})" for d in dual[:MEMBERS_SHOWN]),
        dual_count=len(dual),
    )


def copy_view(group_id: str, last_run: DiscoveryRun | None) -> CopyView:
    """read_copy(), once for the run that ended last (copy_cache)."""
    return read_for_last_run(f"group:{group_id}", lambda: read_copy(group_id, last_run), last_run)


def read_ahead(group_id: str) -> None:
    """Once a run has ended: the readings of the copy that this page and the dual state report keep for it
    (copy_view, the report's count and first page), made by the process that ran it. Otherwise the first admin to
    open the page after each run waited for them (0.25 to 0.5 s at 100,000 devices)."""
    last_run = last_finished_run()
    if last_run is not None:
        copy_view(group_id or copied_group_id(), last_run)
        PairsOfRun(last_run)[:DUAL_STATE_PAGE]  # the report's first page, as its paginator asks for it


def overview(tenant: TenantConnection | None, search: str = "") -> GroupOverview:
    """Everything the group page shows. Graph reads that fail are listed in `problems`; the copy still answers."""
    problems: list[str] = []
    group: dict[str, Any] = {}
    nested_read: list[dict[str, Any]] | None = None
    owners: list[dict[str, Any]] = []
    group_id = ""
    if tenant is not None:
        try:
            group_id = group_id_of(tenant)
            group, nested_read, owners = directory.group_nested_groups_and_owners(tenant.graph, group_id)
        except GraphError as exc:
            problems.append(f"Microsoft Graph could not be read: {exc}")
    group_id = group_id or copied_group_id()
    last_run = last_finished_run()
    view = copy_view(group_id, last_run)
    name = group.get("displayName") or view.names.get(group_id) or settings.AUTOPATCH_REGISTRATION_GROUP_NAME
    if nested_read is None:  # Graph unavailable: the nested groups discovery last read, kind unknown
        nested_read = [{"id": g, "displayName": view.names.get(g, g)} for g in view.nested_ids]
    nested = sorted(
        (
            NestedGroup(
                g["id"],
                str(g.get("displayName") or g["id"]),
                kind_of(g),
                view.device_counts.get(g["id"], 0 if g["id"] in view.names else None),
            )
            for g in nested_read
        ),
        key=lambda g: g.name.lower(),
    )
    kind = kind_of(group) if group else None
    outside = outside_rows(search) if search else view.outside
    # The readiness statuses of the devices shown (members and devices to pick) as they are now, in one read.
    statuses = status_labels([d for _, _, d in (*view.direct, *outside) if d])
    return GroupOverview(
        group_id=group_id,
        name=name,
        kind=kind,
        members=[Member(o, n or o, d, statuses.get(d, "")) for o, n, d in view.direct],
        member_count=view.member_count,
        nested=nested,
        owners=owners,
        findings=health(group_id, name, kind, nested, view),
        replacements=possible_replacements(),
        outside=[Pickable(o, n or o, d, statuses.get(d, "")) for o, n, d in outside],
        last_run=last_run,
        problems=problems,
    )


def direct_rows(group_id: str) -> tuple[tuple[str, str, str], ...]:
    """The group's direct device members (the first MEMBERS_SHOWN by name): (object ID, name, device ID)."""
    copy = TenantObject.objects
    ids = copy.filter(kind=ObjectKind.MEMBER, group_id=group_id, extra=DEVICE_TYPE).values("object_id")
    records = copy.filter(kind=ObjectKind.DEVICE, group_id="", object_id__in=ids).order_by("display_name")
    return tuple(records.values_list("object_id", "display_name", "device_id")[:MEMBERS_SHOWN])


def health(
    group_id: str, name: str, kind: GroupKind | None, nested: list[NestedGroup], view: CopyView
) -> list[Finding]:
    """What stands between the group and discovery, in words an admin acts on."""
    findings: list[Finding] = []
    if view.deep:
        findings.append(
            Finding(
                "Groups nested two or more levels down",
                "Windows Autopatch supports one level of nesting: the devices of these groups are not discovered. "
                "Nest them directly in the registration group, or add their devices to a group that is.",
                tuple(
                    f"{name} › {view.names.get(parent, parent)} › {member_name or object_id}"
                    for parent, object_id, member_name in view.deep
                ),
            )
        )
    if view.others:
        findings.append(
            Finding(
                "Members that are not devices",
                "Only devices are registered: users and other objects in these groups are ignored. Remove them, "
                "or add the user's devices instead.",
                view.others,
            )
        )
    if view.no_id:
        findings.append(
            Finding(
                "Devices without an Entra device ID",
                "A device can only register with an Azure AD device ID: these members have none (or are no longer "
                "in Entra ID). Join or register them in Entra ID, or remove them from the group.",
                view.no_id,
            )
        )
    if kind is not None and kind.configmgr:
        findings.append(
            Finding(
                "A Configuration Manager collection syncs straight into the registration group",
                "Microsoft advises against it: sync the collection to another Entra group and nest that group in "
                "the registration group instead.",
                (name,),
            )
        )
    for group in nested:
        if group.devices == 0:
            findings.append(
                Finding(
                    f"Nested group {group.name} holds no devices",
                    "Discovery finds nothing to register through it: add devices to it, or check its "
                    + ("membership rule." if group.kind.rule else "membership."),
                )
            )
    if view.dual:
        findings.append(
            Finding(
                "Stale records in dual state",
                f"{view.dual_count} Azure AD registered record(s) in the group have a hybrid joined twin: they fail "
                "Intune or Cloud-Attached. Delete them in Entra ID and keep the hybrid joined records.",
                view.dual,
                link="devices:dual_state",
            )
        )
    if view.member_count == 0 and not any(g.devices for g in nested):
        findings.append(
            Finding(
                "The group is empty",
                "Discovery finds no device to register. Add devices below, or nest a group of devices in it.",
            )
        )
    return findings


def add_owner(tenant: TenantConnection, object_id: str) -> bool:
    """Make the signed-in admin's Entra user an owner of the registration group; False if already one."""
    return directory.add_group_owner(tenant.graph, group_id_of(tenant), object_id)
