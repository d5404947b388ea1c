"""Graph reads and writes the portal makes: the registration group, its members, devices, managed devices, owners.

Every request to Microsoft Graph goes through a function here, so views and discovery never build Graph
URLs themselves. Routes and properties follow Microsoft's Graph reference (microsoft-graph-docs-contrib):
- group members: api-reference/v1.0/api/group-list-members.md (direct members, `$top` up to 999)
- devices: api-reference/v1.0/api/device-list.md (`$select`, `$top` up to 999)
- managed devices: api-reference/beta/api/intune-devices-manageddevice-list.md (beta for skuNumber,
  processorArchitecture, joinType, ownerType and the co-management workloads; Intune pages hold up to 1,000)
- one managed device: api-reference/beta/api/intune-devices-manageddevice-get.md, through JSON batching
  (concepts/json-batching.md) to fill what the list left blank
- group owners: api-reference/v1.0/api/group-post-owners.md, group-list-owners.md
- the registration group and the groups nested in it, with their kind: api-reference/v1.0/api/group-get.md and
  api-reference/v1.0/resources/group.md (groupTypes "DynamicMembership", membershipRule, onPremisesSyncEnabled,
  description), the nested ones as the group's members cast to microsoft.graph.group (group-list-members.md)
- adding members: api-reference/v1.0/api/group-post-members.md (`POST /groups/{id}/members/$ref`, 204; an object
  already a member answers 400 "...already exist..."; GroupMember.ReadWrite.All), sent 20 at a time through JSON
  batching (concepts/json-batching.md) so each row gets its own answer (a PATCH with members@odata.bind fails
  as a whole when one of its 20 is already a member: api-reference/v1.0/api/group-update.md)
- looking an ID up: api-reference/v1.0/api/directoryobject-get.md (`GET /directoryObjects/{id}`, its
  @odata.type) and api-reference/v1.0/api/device-get.md (`GET /devices(deviceId='{deviceId}')`)
- member groups: api-reference/v1.0/api/directoryobject-getmembergroups.md
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings

from .graph import GRAPH, GraphClient, GraphError

DEVICE_TYPE = "#microsoft.graph.device"
GROUP_TYPE = "#microsoft.graph.group"
USER_TYPE = "#microsoft.graph.user"
# Not approximateLastSignInDateTime: it changes at every sign-in, evaluation does not use it, and as part of a
# device's input key it would make every hourly run evaluate most devices again.
DEVICE_SELECT = ",".join(
    (
        "id",
        "deviceId",
        "displayName",
        "operatingSystem",
        "operatingSystemVersion",
        "trustType",
        "accountEnabled",
        "profileType",
        "registrationDateTime",
        # What dynamic membership rules read (membership_rules.GRAPH_PROPERTIES), so that a rule preview sees
        # the devices as Entra's rule processing does: api-reference/v1.0/resources/device.md.
        "deviceOwnership",
        "managementType",
        "enrollmentProfileName",
        "physicalIds",
        "deviceCategory",
        "manufacturer",
        "model",
        "mdmAppId",
        "extensionAttributes",
        "isRooted",
    )
)
MANAGED_SELECT = ",".join(
    (
        "id",
        "azureADDeviceId",
        "deviceName",
        "operatingSystem",
        "osVersion",
        "lastSyncDateTime",
        "managementAgent",
        "ownerType",
        "skuFamily",
        "skuNumber",
        "processorArchitecture",
        "joinType",
        "serialNumber",
        "model",
        "manufacturer",
        "userPrincipalName",
        "configurationManagerClientEnabledFeatures",
    )
)
# Intune's managementAgent values of a device co-managed with Configuration Manager (lower-cased).
CO_MANAGED_AGENTS = frozenset({"configurationmanagerclientmdm", "configurationmanagerclientmdmeas"})
# Set on a managed device whose list blanks could not be looked up: the names of the properties still blank.
BLANKS = "@portal.blanks"


class RegistrationGroupError(GraphError):
    """The registration group cannot be told apart: none or several groups carry its name."""


def quote(value: str) -> str:
    """A string literal for OData `$filter`: single quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def equals(name: str, value: str) -> str:
    """A `$filter` clause `name eq 'value'`; every string a filter compares goes through quote()."""
    return f"{name} eq {quote(value)}"


WINDOWS_ONLY = equals("operatingSystem", "Windows")


def registration_group_id(graph: GraphClient, configured_id: str = "") -> str:
    """The registration group's object ID: the configured one, or the one group carrying its name."""
    if configured_id:
        return configured_id
    name = settings.AUTOPATCH_REGISTRATION_GROUP_NAME
    found = [
        g
        for page in graph.pages(
            "/v1.0/groups", {"$filter": equals("displayName", name), "$select": "id,displayName"}
        )
        for g in page
    ]
    if len(found) != 1:
        raise RegistrationGroupError(
            f"The tenant has {len(found)} groups named {name!r}; set AUTOPATCH_REGISTRATION_GROUP_ID to the one to use."
            if found
            else f"The tenant has no group named {name!r}: create it, or set AUTOPATCH_REGISTRATION_GROUP_ID."
        )
    return found[0]["id"]


def members_url(group_id: str) -> str:
    return f"{GRAPH}/v1.0/groups/{group_id}/members"


def device_pages(graph: GraphClient, page_size: int | None = None) -> Iterator[list[dict]]:
    """Every Entra device record of the tenant."""
    return graph.pages(
        "/v1.0/devices", {"$select": DEVICE_SELECT, "$top": page_size or settings.AUTOPATCH_GRAPH_PAGE_SIZE}
    )


def managed_device_pages(
    graph: GraphClient, since: datetime | None = None, page_size: int | None = None
) -> Iterator[list[dict]]:
    """Every Windows device Intune manages, or those that synced after `since` (Intune has no delta query;
    `lastSyncDateTime` filters with `gt`), from beta (see the module's note), in Intune's pages of up to 1,000.
    Some items may hold list blanks: see fill_list_blanks()."""
    wanted = (
        WINDOWS_ONLY
        if since is None
        else f"{WINDOWS_ONLY} and lastSyncDateTime gt {since:%Y-%m-%dT%H:%M:%SZ}"
    )
    params = {
        "$select": MANAGED_SELECT,
        "$filter": wanted,
        "$top": page_size or settings.AUTOPATCH_INTUNE_PAGE_SIZE,
    }
    return graph.pages("/beta/deviceManagement/managedDevices", params)


def member_names(graph: GraphClient, group_id: str, odata_type: str) -> dict[str, str]:
    """The names of the group's direct members of one type (`microsoft.graph.user`, `microsoft.graph.group`):
    a cast of the members list, which takes `ConsistencyLevel: eventual` with `$count`
    (api-reference/v1.0/api/group-list-members.md, "Get only a count of all membership" and the cast examples)."""
    params = {"$select": "id,displayName", "$count": "true", "$top": settings.AUTOPATCH_GRAPH_PAGE_SIZE}
    pages = graph.pages(
        f"{members_url(group_id)}/{odata_type}", params, headers={"ConsistencyLevel": "eventual"}
    )
    return {
        m["id"]: name if isinstance(name := m.get("displayName"), str) else ""
        for page in pages
        for m in page
        if isinstance(m.get("id"), str)
    }


def list_blanks(managed: dict[str, Any]) -> list[str]:
    """The properties of a listed managed device that Intune's list answer may have left at their defaults, which
    a GET of the one device fills in: processorArchitecture "unknown", skuNumber missing or 0, and the co-management
    workloads (configurationManagerClientEnabledFeatures) missing on a co-managed device."""
    blanks = []
    if str(managed.get("processorArchitecture") or "unknown").lower() == "unknown":
        blanks.append("processorArchitecture")
    if not managed.get("skuNumber"):
        blanks.append("skuNumber")
    agent = str(managed.get("managementAgent") or "").lower()
    if agent in CO_MANAGED_AGENTS and not managed.get("configurationManagerClientEnabledFeatures"):
        blanks.append("configurationManagerClientEnabledFeatures")
    return blanks


def managed_device_url(managed_id: str) -> str:
    return f"/beta/deviceManagement/managedDevices/{managed_id}?$select={MANAGED_SELECT}"


def fill_list_blanks(
    graph: GraphClient, managed_items: Iterable[dict[str, Any]], workers: int = 1
) -> tuple[list[dict], dict[str, str]]:
    """Look up, through JSON batching, every listed managed device with list blanks, and complete it with the
    device's own GET. The items are completed in place and returned, with those that could not be looked up
    (their answer was an error, after the throttled ones were retried) as {managed device ID: error}: each of
    those carries, under BLANKS, the names of its properties still blank, so that evaluation does not fail a
    device on them. `workers` batches are sent at once."""
    items = list(managed_items)
    blank = [(item, names) for item in items if (names := list_blanks(item)) and item.get("id")]
    unresolved: dict[str, str] = {}
    answers = (
        graph.batch([managed_device_url(str(item["id"])) for item, _ in blank], workers) if blank else []
    )
    for (item, names), answer in zip(blank, answers, strict=True):
        body = answer.body if isinstance(answer.body, dict) else {}
        # The reference page's example wraps the device in "value"; Graph answers it bare: take either.
        found = body.get("value") if isinstance(body.get("value"), dict) else body
        if answer.error is None and found.get("id") == item["id"]:
            item.update({key: value for key, value in found.items() if not key.startswith("@")})
            item.pop(BLANKS, None)
        else:
            unresolved[str(item["id"])] = str(
                answer.error or f"Graph answered another device for {item['id']}"
            )
            item[BLANKS] = names
    return items, unresolved


GROUP_SELECT = "id,displayName,description,groupTypes,membershipRule,onPremisesSyncEnabled"
OWNER_SELECT = "id,displayName,userPrincipalName"
# The application permission that adding members needs (group-post-members.md, for a device also Device.Read.All
# to read it; the portal already holds that one).
ADD_MEMBERS_PERMISSION = "GroupMember.ReadWrite.All"


def group_nested_groups_and_owners(
    graph: GraphClient, group_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """The group with the properties that say its kind (see GROUP_SELECT), the groups that are its direct members
    (each with the same properties) and its owners (group-list-owners.md: users, and sometimes service
    principals): three reads in one `$batch` round trip (concepts/json-batching.md), further pages through their
    @odata.nextLink. A read Graph refuses raises its GraphError."""
    top = settings.AUTOPATCH_GRAPH_PAGE_SIZE
    # The members cast to groups: an advanced query, which needs ConsistencyLevel: eventual.
    nested_url = f"{members_url(group_id)}/microsoft.graph.group"
    owners_url = f"{GRAPH}/v1.0/groups/{group_id}/owners"
    eventual = {"ConsistencyLevel": "eventual"}
    answers = graph.batch(
        [
            with_query(f"/v1.0/groups/{group_id}", {"$select": GROUP_SELECT}),
            {
                "method": "GET",
                "url": with_query(nested_url, {"$select": GROUP_SELECT, "$count": "true", "$top": top}),
                "headers": eventual,
            },
            with_query(owners_url, {"$select": OWNER_SELECT, "$top": top}),
        ]
    )
    for answer in answers:
        if answer.error is not None:
            raise answer.error
    group, nested, owners = (answer.body for answer in answers)
    if not isinstance(group, dict):
        raise GraphError(
            f"Graph sent a malformed answer for the group {group_id}", url=f"/v1.0/groups/{group_id}"
        )
    return (
        group,
        objects_with_ids(graph.pages(nested_url, headers=eventual, first=nested)),
        objects_with_ids(graph.pages(owners_url, first=owners)),
    )


def with_query(url: str, params: dict[str, Any]) -> str:
    """A URL with its query string, as a batch item carries it ("$" and "," left as Graph's examples write them)."""
    return f"{url}?{urlencode(params, safe='$,')}"


def objects_with_ids(pages: Iterable[list[dict]]) -> list[dict[str, Any]]:
    return [o for page in pages for o in page if isinstance(o, dict) and isinstance(o.get("id"), str)]


def look_up_objects(graph: GraphClient, ids: list[str]) -> dict[str, dict[str, Any] | None]:
    """What each ID names: a device by its object ID or its device ID, another directory object, or nothing
    (None). Two batched GETs per ID: `/devices(deviceId='...')` and `/directoryObjects/{id}`."""
    requests_: list[str] = []
    for object_id in ids:
        requests_.append(f"/v1.0/devices(deviceId={quote(object_id)})?$select=id,deviceId,displayName")
        requests_.append(f"/v1.0/directoryObjects/{object_id}?$select=id,deviceId,displayName")
    answers = graph.batch(requests_, workers=2) if requests_ else []
    found: dict[str, dict[str, Any] | None] = {}
    for index, object_id in enumerate(ids):
        by_device_id, by_object_id = answers[2 * index], answers[2 * index + 1]
        for answer, kind in ((by_device_id, DEVICE_TYPE), (by_object_id, "")):
            if answer.error is None and isinstance(answer.body, dict) and answer.body.get("id"):
                found[object_id] = {
                    "@odata.type": kind or answer.body.get("@odata.type") or "",
                    **answer.body,
                }
                break
            if answer.error is not None and answer.status not in (400, 404):
                raise answer.error
        else:
            found[object_id] = None
    return found


@dataclass(frozen=True)
class MemberAdded:
    """How Graph answered the addition of one object: added, already a member, or an error; and whether it was
    throttled on the way (and retried)."""

    object_id: str
    added: bool
    already: bool
    error: GraphError | None
    retried: bool


def add_group_members(graph: GraphClient, group_id: str, object_ids: list[str]) -> list[MemberAdded]:
    """Add directory objects to the group, 20 a batch, each its own `POST /groups/{id}/members/$ref`. A missing
    permission (403) raises, naming ADD_MEMBERS_PERMISSION: no row can be added then."""
    requests_ = [
        {
            "method": "POST",
            "url": f"/v1.0/groups/{group_id}/members/$ref",
            "headers": {"Content-Type": "application/json"},
            "body": {"@odata.id": f"{GRAPH}/v1.0/directoryObjects/{object_id}"},
        }
        for object_id in object_ids
    ]
    answers = graph.batch(requests_, workers=2) if requests_ else []
    results = []
    for object_id, answer in zip(object_ids, answers, strict=True):
        error = answer.error
        if error is not None and error.status == 403:
            raise GraphError(
                f"The portal's app registration lacks the {ADD_MEMBERS_PERMISSION} application permission, "
                f"which adding members to a group needs: grant it (with admin consent) in Microsoft Entra ID. "
                f"Graph said: {error}",
                status=403,
                code=error.code,
                request_id=error.request_id,
            )
        already = error is not None and error.status == 400 and "already exist" in str(error)
        results.append(
            MemberAdded(
                object_id,
                added=error is None,
                already=already,
                error=None if already else error,
                retried=answer.attempts > 1,
            )
        )
    return results


def add_group_owner(graph: GraphClient, group_id: str, object_id: str) -> bool:
    """Make a directory object an owner of the group; False when it already was one."""
    try:
        graph.post(
            f"v1.0/groups/{group_id}/owners/$ref", {"@odata.id": f"{GRAPH}/v1.0/directoryObjects/{object_id}"}
        )
    except GraphError as exc:
        if exc.status == 400 and "already exist" in str(exc):
            return False
        raise
    return True


CHECK_MEMBER_GROUPS_LIMIT = 20  # group IDs per request


def check_member_groups(graph: GraphClient, group_ids: list[str]) -> set[str]:
    """Which of `group_ids` hold the signed-in user, directly or through nesting: `POST /v1.0/me/checkMemberGroups`
    with the user's delegated token (User.Read and GroupMember.Read.All), at most 20 groups a request
    (api-reference/v1.0/api/directoryobject-checkmembergroups.md)."""
    held: set[str] = set()
    for first in range(0, len(group_ids), CHECK_MEMBER_GROUPS_LIMIT):
        answer = graph.post(
            "v1.0/me/checkMemberGroups", {"groupIds": group_ids[first : first + CHECK_MEMBER_GROUPS_LIMIT]}
        )
        held.update(group for group in answer.get("value", []) if isinstance(group, str))
    return held


def device_records(graph: GraphClient, device_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """One device read from the tenant by its Entra device ID: its Entra record, by the alternate key
    `GET /devices(deviceId='{deviceId}')` (api-reference/v1.0/api/device-get.md; None when no device has it), and its
    Intune managed devices (`$filter=azureADDeviceId eq '...'` on beta's list, as the connector reads them, with
    list blanks looked up). For registrations of devices discovery has not read yet."""
    try:
        entra = graph.get(f"/v1.0/devices(deviceId={quote(device_id)})", {"$select": DEVICE_SELECT})
    except GraphError as exc:
        if exc.status == 404:
            return None, []
        raise
    params = {"$select": MANAGED_SELECT, "$filter": equals("azureADDeviceId", device_id)}
    managed = [item for page in graph.pages("/beta/deviceManagement/managedDevices", params) for item in page]
    return entra, fill_list_blanks(graph, managed)[0]
