"""Graph reads and writes the portal makes: the registration group, its members, devices, managed devices, owners.

Every request to Microsoft Graph goes through a function here, so views and discovery never build Graph
URLs themselves. Routes and properties follow Microsoft's Graph reference (microsoft-graph-docs-contrib):
- group members: api-reference/v1.0/api/group-list-members.md (direct members, `$top` up to 999)
- devices: api-reference/v1.0/api/device-list.md (`$select`, `$top` up to 999)
- managed devices: api-reference/beta/api/intune-devices-manageddevice-list.md (beta for skuNumber,
  processorArchitecture, joinType, ownerType and the co-management workloads)
- group owners: api-reference/v1.0/api/group-post-owners.md
- member groups: api-reference/v1.0/api/directoryobject-getmembergroups.md
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.conf import settings

from .graph import GRAPH, GraphClient, GraphError

DEVICE_TYPE = "#microsoft.graph.device"
GROUP_TYPE = "#microsoft.graph.group"
USER_TYPE = "#microsoft.graph.user"
MEMBER_SELECT = "id,deviceId,displayName"
# Not approximateLastSignInDateTime: it changes at every sign-in, evaluation does not use it, and as part of a
# device's input key it would make every hourly run evaluate most devices again.
DEVICE_SELECT = ",".join(
    ("id", "deviceId", "displayName", "operatingSystem", "operatingSystemVersion", "trustType", "accountEnabled",
     "profileType", "registrationDateTime")
)  # fmt: skip
MANAGED_SELECT = ",".join(
    ("id", "azureADDeviceId", "deviceName", "operatingSystem", "osVersion", "lastSyncDateTime", "managementAgent",
     "ownerType", "skuFamily", "skuNumber", "processorArchitecture", "joinType", "serialNumber", "model",
     "manufacturer", "userPrincipalName", "configurationManagerClientEnabledFeatures")
)  # fmt: skip
WINDOWS_ONLY = "operatingSystem eq 'Windows'"


class RegistrationGroupError(GraphError):
    """The registration group cannot be told apart: none or several groups carry its name."""


def quote(value: str) -> str:
    """A string literal for OData `$filter`: single quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def registration_group_id(graph: GraphClient, configured_id: str = "") -> str:
    """The registration group's object ID: the configured one, or the one group carrying its name."""
    if configured_id:
        return configured_id
    name = settings.AUTOPATCH_REGISTRATION_GROUP_NAME
    found = [g for page in graph.pages("/v1.0/groups", {"$filter": f"displayName eq {quote(name)}",
                                                        "$select": "id,displayName"}) for g in page]  # fmt: skip
    if len(found) != 1:
        raise RegistrationGroupError(
            f"The tenant has {len(found)} groups named {name!r}; set AUTOPATCH_REGISTRATION_GROUP_ID to the one to use."
            if found else f"The tenant has no group named {name!r}: create it, or set AUTOPATCH_REGISTRATION_GROUP_ID."
        )
    return found[0]["id"]


def members_url(group_id: str) -> str:
    return f"{GRAPH}/v1.0/groups/{group_id}/members"


def member_pages(graph: GraphClient, group_id: str, page_size: int | None = None) -> Iterator[list[dict]]:
    """The group's direct members (devices, groups, users, ...), each with its @odata.type."""
    params = {"$select": MEMBER_SELECT, "$top": page_size or settings.AUTOPATCH_GRAPH_PAGE_SIZE}
    return graph.pages(members_url(group_id), params)


def device_pages(graph: GraphClient, page_size: int | None = None) -> Iterator[list[dict]]:
    """Every Entra device record of the tenant."""
    return graph.pages("/v1.0/devices", {"$select": DEVICE_SELECT, "$top": page_size or settings.AUTOPATCH_GRAPH_PAGE_SIZE})


def managed_device_pages(graph: GraphClient, page_size: int | None = None) -> Iterator[list[dict]]:
    """Every Windows device Intune manages, from beta (see the module's note)."""
    params = {"$select": MANAGED_SELECT, "$filter": WINDOWS_ONLY, "$top": page_size or settings.AUTOPATCH_GRAPH_PAGE_SIZE}
    return graph.pages("/beta/deviceManagement/managedDevices", params)


def group(graph: GraphClient, group_id: str) -> dict[str, Any]:
    return graph.get(f"/v1.0/groups/{group_id}", {"$select": "id,displayName"})


def members_page(graph: GraphClient, group_id: str, next_link: str = "", page_size: int = 100) -> dict[str, Any]:
    """One page of the group's direct members, for browsing; `next_link` must be Graph's own next page of
    this group (the app's token must never be sent anywhere else), else ValueError."""
    url = members_url(group_id)
    if next_link and not next_link.startswith(f"{url}?"):
        raise ValueError("That is not a next page of the registration group's members.")
    params = None if next_link else {"$select": MEMBER_SELECT, "$top": page_size}
    return graph.get(next_link or url, params)


def add_group_owner(graph: GraphClient, group_id: str, object_id: str) -> bool:
    """Make a directory object an owner of the group; False when it already was one."""
    try:
        graph.post(f"v1.0/groups/{group_id}/owners/$ref",
                   {"@odata.id": f"{GRAPH}/v1.0/directoryObjects/{object_id}"})  # fmt: skip
    except GraphError as exc:
        if exc.status == 400 and "already exist" in str(exc):
            return False
        raise
    return True


def member_groups(graph: GraphClient, object_id: str) -> set[str]:
    """The IDs of every group that holds the object, directly or through nesting."""
    answer = graph.post(f"v1.0/users/{object_id}/getMemberGroups", {"securityEnabledOnly": False})
    return {group for group in answer.get("value", []) if isinstance(group, str)}


CHECK_MEMBER_GROUPS_LIMIT = 20  # group IDs per request


def check_member_groups(graph: GraphClient, group_ids: list[str]) -> set[str]:
    """Which of `group_ids` hold the signed-in user, directly or through nesting: `POST /v1.0/me/checkMemberGroups`
    with the user's delegated token (User.Read and GroupMember.Read.All), at most 20 groups a request
    (api-reference/v1.0/api/directoryobject-checkmembergroups.md)."""
    held: set[str] = set()
    for first in range(0, len(group_ids), CHECK_MEMBER_GROUPS_LIMIT):
        answer = graph.post("v1.0/me/checkMemberGroups", {"groupIds": group_ids[first:first + CHECK_MEMBER_GROUPS_LIMIT]})
        held.update(group for group in answer.get("value", []) if isinstance(group, str))
    return held
