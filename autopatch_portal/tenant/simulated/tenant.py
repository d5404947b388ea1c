"""A tenant held in memory, answering Entra token and Graph requests as the real services do."""

from __future__ import annotations

import base64
import hashlib
import json
import operator
import re
import secrets
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import orjson

from .. import membership_rules

LOGIN_HOST = "login.microsoftonline.com"
GRAPH_HOST = "graph.microsoft.com"
# Directory objects: 100 a page unless $top asks for up to 999 (api-reference/v1.0/api/group-list-members.md).
MAX_PAGE_SIZE = 999
DEFAULT_PAGE_SIZE = 100
# Intune's lists answer up to 1,000 a page, 1,000 unless $top asks for fewer.
INTUNE_MAX_PAGE_SIZE = 1000
INTUNE_DEFAULT_PAGE_SIZE = 1000
BATCH_LIMIT = 20  # concepts/json-batching.md
# What Intune's list answers leave at their defaults for some devices, and a single-device GET fills in.
LIST_BLANKS = {
    "processorArchitecture": "unknown",
    "skuNumber": 0,
    "configurationManagerClientEnabledFeatures": None,
}
INTUNE_SERVICE_URL = (
    "https://fef.msua06.manage.microsoft.com/DeviceFE/StatelessDeviceFEService/deviceManagement"
)

DEVICE_FIELDS = (
    "id",
    "deviceId",
    "displayName",
    "operatingSystem",
    "operatingSystemVersion",
    "trustType",
    "accountEnabled",
    "profileType",
    "registrationDateTime",
    "approximateLastSignInDateTime",
)
MANAGED_DEVICE_FIELDS = (
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
)


# A `$filter` clause on managed devices: a property eq a quoted string ('' is a quote), or compared with a time.
FILTER_CLAUSE = r"(\w+) (eq|gt|ge|lt|le) ('(?:[^']|'')*'|\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:\d\d))"
COMPARISONS = {"eq": operator.eq, "gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}


def _moment(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


class TenantFileError(ValueError):
    """The tenant file does not have the contract's shape."""


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """An injected failure: the next `times` requests matching method and path fail."""

    path: str
    status: int | str  # an HTTP status, "malformed" (a page that is not Graph JSON) or "timeout"
    times: int = 1
    method: str = "GET"
    retry_after: str | None = None
    skip: int = 0  # let this many matching requests through first

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and method == self.method and self.path in path


def _require(obj: dict, keys: tuple[str, ...], where: str) -> None:
    missing = [key for key in keys if key not in obj]
    if missing:
        raise TenantFileError(f"{where} lacks {', '.join(missing)}")


def load_tenant_file(path: str | Path) -> SimulatedTenant:
    """The tenant a file describes, parsed once (with orjson: the stdlib's parser took 2 s of a first discovery of
    a 100,000-device file, and the sign-in and API token parts each parsed the file again for their sections)."""
    try:
        data = orjson.loads(Path(path).read_bytes())
    except FileNotFoundError as exc:
        raise TenantFileError(f"tenant file {path} does not exist") from exc
    except orjson.JSONDecodeError as exc:
        raise TenantFileError(f"tenant file {path} is not JSON: {exc}") from exc
    return SimulatedTenant(data)


def _shift_dates(items: list[dict], delta) -> None:
    for item in items:
        for key, value in item.items():
            if key.endswith("DateTime") and isinstance(value, str) and value:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00")) + delta
                item[key] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class SimulatedTenant:
    """Holds the tenant file's objects and answers requests for them.

    The file's shape is a contract other tools write: registrationGroupId, groups, devices,
    managedDevices, readinessReports; optionally users, tenantId, deniedPermissions, relativeTo (dates in
    the file are then moved forward by now - relativeTo, so a bundled demo never goes stale),
    faults, and simulation: {"listBlankShare": 0.05, "listBlankIds": [...]}, the share of managed
    devices (and named ones) whose list answers leave architecture, SKU and workloads blank.
    """

    def __init__(self, data: dict[str, Any]):
        if not isinstance(data, dict):
            raise TenantFileError("a tenant file is a JSON object")
        _require(data, ("registrationGroupId", "groups", "devices", "managedDevices"), "the tenant file")
        self.tenant_id: str = data.get("tenantId", "00000000-0000-4000-8000-000000000000")
        # Optional sections that the sign-in (simulated.signin) and the API's tokens (simulated.api_tokens) check.
        self.app_registration_section: Any = data.get("appRegistration")
        self.api_clients_section: Any = data.get("apiClients")
        self.registration_group_id: str = data["registrationGroupId"]
        self.groups: dict[str, dict] = {}
        for group in data["groups"]:
            _require(group, ("id", "displayName", "members"), "a group")
            self.groups[group["id"]] = group
        for device in data["devices"]:
            _require(device, ("id", "deviceId"), "a device")
        for managed in data["managedDevices"]:
            _require(managed, ("id", "azureADDeviceId"), "a managed device")
        for report in data.get("readinessReports", []):
            _require(report, ("azureADDeviceId", "generatedDateTime", "checks"), "a readiness report")
        if data.get("relativeTo"):
            anchor = datetime.fromisoformat(data["relativeTo"].replace("Z", "+00:00"))
            # Whole days, so that every process that loads the file on the same day sees the same dates.
            delta = timedelta(days=(datetime.now(UTC) - anchor).days)
            for items in (data["devices"], data["managedDevices"], data.get("readinessReports", [])):
                _shift_dates(items, delta)
        self.devices: list[dict] = data["devices"]
        self.managed_devices: list[dict] = data["managedDevices"]
        self.readiness_reports: list[dict] = data.get("readinessReports", [])
        self.users: dict[str, dict] = {user["id"]: user for user in data.get("users", [])}
        self.devices_by_id = {device["id"]: device for device in self.devices}
        for group in self.groups.values():
            for member in group["members"]:
                if (
                    member not in self.devices_by_id
                    and member not in self.groups
                    and member not in self.users
                ):
                    raise TenantFileError(
                        f"group {group['displayName']!r} has member {member!r}, which is no device, group or user"
                    )
        for group in self.groups.values():
            compute_dynamic_members(group, self.devices)
        if self.registration_group_id not in self.groups:
            raise TenantFileError(
                f"registrationGroupId {self.registration_group_id!r} is not among the groups"
            )
        self.group_owners: dict[str, list[str]] = {
            gid: list(g.get("owners", [])) for gid, g in self.groups.items()
        }
        # The app's application permissions; absent from the file: every permission the portal uses.
        permissions = data.get("applicationPermissions")
        if permissions is not None and not (
            isinstance(permissions, list) and all(isinstance(p, str) for p in permissions)
        ):
            raise TenantFileError("applicationPermissions is a list of permission names")
        self.application_permissions: frozenset[str] | None = (
            None if permissions is None else frozenset(permissions)
        )
        # Called with (group ID, member ID) after a member was added, so that the addition outlives the process.
        self.on_member_added: Any = None
        # Confidential-client credentials the token endpoint accepts; None accepts any pair.
        self.client_credentials: dict[str, str] | None = None
        self.faults: list[Fault] = [Fault(**fault) for fault in data.get("faults", [])]
        self.managed_by_id = {managed["id"]: managed for managed in self.managed_devices}
        self.list_blank_ids = list_blank_ids(data.get("simulation", {}), self.managed_by_id)
        self.requests: Counter[str] = Counter()
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        # (method, host, path pattern, handler(tenant, match, query, headers, form)): sign-in adds its own.
        self.extra_routes: list[tuple[str, str, str, Any]] = []
        self._filter_cache: dict[str, list[dict]] = {}
        self._typed_members: dict[tuple[str, str], tuple[list[str], int, list[str]]] = {}
        denied = data.get("deniedPermissions", [])
        if not isinstance(denied, list) or not all(isinstance(p, str) for p in denied):
            raise TenantFileError("deniedPermissions is a list of permission names")
        # Application permissions taken away from those above (a test's shorter way to say what the app lacks).
        self.denied_permissions: set[str] = set(denied)
        from .health_scripts import HealthScripts  # it answers with this module's helpers

        self.health_scripts = HealthScripts(self)

    # -- entry point -------------------------------------------------------------------------

    def handle(self, method: str, url: str, headers: dict[str, str], body: bytes | str | None) -> Response:
        parts = urlsplit(url)
        query = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
        with self._lock:
            self.requests[f"{method} {parts.path}"] += 1
            fault = self._take_fault(method, parts.path)
        if fault is not None:
            return self._fault_response(fault, parts.path)
        if isinstance(body, str):
            body = body.encode()
        form = {k: v[-1] for k, v in parse_qs((body or b"").decode(errors="replace")).items()}
        form["_body"] = (body or b"").decode(errors="replace")  # extra routes that take JSON read it whole
        # Every Graph route, built in or added (delta, run states, sign-in), wants a token this tenant issued.
        if parts.netloc == GRAPH_HOST and not self._authorized(headers):
            return graph_error(401, "InvalidAuthenticationToken", "Access token is empty or invalid.")
        for route_method, host, pattern, handler in self.extra_routes:
            match = re.fullmatch(pattern, parts.path)
            if route_method == method and parts.netloc == host and match:
                return handler(self, match, query, headers, form)
        if parts.netloc == LOGIN_HOST:
            return self._login(method, parts.path, form)
        if parts.netloc == GRAPH_HOST:
            return self._graph(method, parts.path, query, parts, body, headers)
        return Response(404, b"not found")

    def total_requests(self, host_path_prefix: str = "") -> int:
        return sum(
            count for key, count in self.requests.items() if key.split(" ", 1)[1].startswith(host_path_prefix)
        )

    def inject(self, path: str, status: int | str, times: int = 1, **kwargs: Any) -> Fault:
        fault = Fault(path=path, status=status, times=times, **kwargs)
        self.faults.append(fault)
        return fault

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                if fault.skip > 0:
                    fault.skip -= 1
                    return None
                fault.times -= 1
                return fault
        return None

    def _fault_response(self, fault: Fault, path: str) -> Response:
        if fault.status == "timeout":
            raise TimeoutError("simulated time-out")
        if fault.status == "malformed":
            return Response(200, b'{"value": [{"id": "truncated', {"Content-Type": "application/json"})
        status = int(fault.status)
        if status == 429:
            response = graph_error(429, "TooManyRequests", "Too many requests, retry after some time.")
            response.headers["Retry-After"] = fault.retry_after or "1"
            return response
        code = "ServiceUnavailable" if status >= 500 else "BadRequest"
        response = (intune_error if "/deviceManagement/" in path else graph_error)(
            status, code, "Injected failure."
        )
        if fault.retry_after is not None:
            response.headers["Retry-After"] = fault.retry_after
        return response

    # -- Entra ---------------------------------------------------------------------------------

    def authority(self) -> str:
        return f"https://{LOGIN_HOST}/{self.tenant_id}"

    def _login(self, method: str, path: str, form: dict[str, str]) -> Response:
        segments = path.strip("/").split("/")
        if not segments or segments[0] not in (self.tenant_id, "organizations", "common"):
            return entra_error(400, "invalid_tenant", f"AADSTS90002: Tenant '{segments[0]}' not found.")
        rest = "/".join(segments[1:])
        if method == "GET" and rest == "v2.0/.well-known/openid-configuration":
            base = f"https://{LOGIN_HOST}/{self.tenant_id}"
            return json_response(
                200,
                {
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                    "jwks_uri": f"{base}/discovery/v2.0/keys",
                    "issuer": f"https://{LOGIN_HOST}/{self.tenant_id}/v2.0",
                    "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                    "scopes_supported": ["openid", "profile", "email", "offline_access"],
                    "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                    "tenant_region_scope": "EU",
                },
            )
        if (
            method == "POST"
            and rest == "oauth2/v2.0/token"
            and form.get("grant_type") == "client_credentials"
        ):
            return self._client_credentials(form)
        if method == "POST" and rest == "oauth2/v2.0/token":
            return self.token_grant(form)
        return entra_error(404, "invalid_request", f"AADSTS900561: unsupported endpoint {path}")

    def _client_credentials(self, form: dict[str, str]) -> Response:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if self.client_credentials is not None and self.client_credentials.get(client_id) != secret:
            return entra_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        if "https://graph.microsoft.com/.default" not in form.get("scope", "").split():
            return entra_error(
                400, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid."
            )
        token = self.issue_access_token()
        return json_response(
            200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}
        )

    def token_grant(self, form: dict[str, str]) -> Response:
        """Other grants (the sign-in's authorization code) are added by accounts' simulated sign-in."""
        return entra_error(
            400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type."
        )

    def issue_access_token(self) -> str:
        token = "sim-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens.add(token)
        return token

    def _authorized(self, headers: dict[str, str]) -> bool:
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
        return value.startswith("Bearer ") and value[7:] in self._tokens

    # -- Graph ---------------------------------------------------------------------------------

    def _graph(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        parts,
        body: bytes | None,
        headers: dict[str, str],
    ) -> Response:
        match = re.fullmatch(r"/(v1\.0|beta)/(.*)", path)
        if not match:
            return graph_error(400, "BadRequest", "Invalid version.")
        version, resource = match.groups()
        if method == "POST" and resource == "$batch":
            return self._batch(version, body, headers)
        if method == "GET" and resource == "groups":
            return self._list_groups(query, parts)
        group_match = re.fullmatch(r"groups/([^/]+)(/members)?", resource)
        if method == "GET" and group_match:
            group = self.groups.get(group_match.group(1))
            if group is None:
                return graph_error(
                    404,
                    "Request_ResourceNotFound",
                    f"Resource '{group_match.group(1)}' does not exist or one of its queried "
                    "reference-property objects are not present.",
                )
            if group_match.group(2):
                return self._page(group["members"], query, parts, typed=True, resolve=self._directory_object)
            return json_response(200, select(self._group_object(group), query))
        owner_match = re.fullmatch(r"groups/([^/]+)/owners/\$ref", resource)
        if method == "POST" and owner_match:
            return self._add_owner(owner_match.group(1), body)
        owners_match = re.fullmatch(r"groups/([^/]+)/owners", resource)
        if method == "GET" and owners_match:
            if owners_match.group(1) not in self.groups:
                return graph_error(
                    404, "Request_ResourceNotFound", f"Resource '{owners_match.group(1)}' does not exist."
                )
            owners = [
                self.users[o] | {"@odata.type": "#microsoft.graph.user"}
                for o in self.group_owners[owners_match.group(1)]
                if o in self.users
            ]
            return self._page(owners, query, parts, typed=True)
        member_match = re.fullmatch(r"groups/([^/]+)/members/\$ref", resource)
        if method == "POST" and member_match:
            return self._add_member(member_match.group(1), body)
        object_match = re.fullmatch(r"directoryObjects/([^/]+)", resource)
        if method == "GET" and object_match:
            object_id = object_match.group(1)
            if not self.has_object(object_id):
                return not_found(object_id)
            return json_response(200, select(self._directory_object(object_id), query, keep_type=True))
        by_device_id = re.fullmatch(r"devices\(deviceId='((?:[^']|'')*)'\)", resource)
        if method == "GET" and by_device_id:
            wanted = by_device_id.group(1).replace("''", "'")
            found = next((d for d in self.devices if d["deviceId"] == wanted), None)
            if found is None:
                return graph_error(
                    404,
                    "Request_ResourceNotFound",
                    f"Resource 'deviceId={wanted}' does not exist or one of its queried reference-property objects are not present.",
                )
            return json_response(200, select(found, query))
        if method == "GET" and resource == "devices":
            return self._page(self.devices, query, parts)
        by_device_id = re.fullmatch(r"devices\(deviceId='((?:[^']|'')*)'\)", unquote(resource))
        if method == "GET" and by_device_id:  # the alternate key (device-get.md)
            wanted = by_device_id.group(1).replace("''", "'")
            found = next((d for d in self.devices if d.get("deviceId") == wanted), None)
            if found is None:
                return graph_error(
                    404, "Request_ResourceNotFound", f"Resource 'deviceId={wanted}' does not exist."
                )
            return json_response(200, select(found, query))
        managed_match = re.fullmatch(r"deviceManagement/managedDevices(?:/([^/]+))?", resource)
        if method == "GET" and managed_match:
            if version != "beta" and any(
                f in query.get("$select", "") for f in ("skuFamily", "ownerType", "joinType")
            ):
                return graph_error(
                    400,
                    "BadRequest",
                    "Could not find a property named 'skuFamily' on type 'microsoft.graph.managedDevice'.",
                )
            if managed_match.group(1):
                return self._managed_device(managed_match.group(1), query, parts)
            items: list[dict] | None = self.managed_devices
            wanted = query.get("$filter", "")
            if wanted:
                items = self._filtered(wanted)
                if items is None:
                    return intune_error(400, "BadRequest", f"Unsupported filter: {wanted}")
            return self._page(items, query, parts, resolve=self._listed, intune=True)
        return graph_error(
            400, "BadRequest", f"Resource not found for the segment '{resource.split('/')[0]}'."
        )

    def _list_groups(self, query: dict[str, str], parts) -> Response:
        groups = list(self.groups.values())
        wanted = query.get("$filter", "")
        if wanted:
            name = re.fullmatch(r"displayName eq '((?:[^']|'')*)'", wanted)
            if not name:
                return graph_error(400, "Request_UnsupportedQuery", f"Unsupported query: {wanted}")
            groups = [g for g in groups if g["displayName"] == name.group(1).replace("''", "'")]
        return self._page([self._group_object(g) for g in groups], query, parts)

    @staticmethod
    def _group_object(group: dict) -> dict:
        return {
            "@odata.type": "#microsoft.graph.group",
            "id": group["id"],
            "displayName": group["displayName"],
            "description": group.get("description"),
            "groupTypes": group.get("groupTypes", []),
            "securityEnabled": True,
            "mailEnabled": False,
            "membershipRule": group.get("membershipRule"),
            "onPremisesSyncEnabled": group.get("onPremisesSyncEnabled"),
            "membershipRuleProcessingState": group.get("membershipRuleProcessingState"),
        }

    def _directory_object(self, object_id: str) -> dict:
        if object_id in self.devices_by_id:
            return {"@odata.type": "#microsoft.graph.device", **self.devices_by_id[object_id]}
        if object_id in self.groups:
            return self._group_object(self.groups[object_id])
        return {"@odata.type": "#microsoft.graph.user", **self.users[object_id]}

    def _add_owner(self, group_id: str, body: bytes | None) -> Response:
        if group_id not in self.groups:
            return graph_error(404, "Request_ResourceNotFound", f"Resource '{group_id}' does not exist.")
        try:
            ref = json.loads(body or b"{}")["@odata.id"]
        except (ValueError, KeyError):
            return graph_error(400, "Request_BadRequest", "Invalid request body.")
        owner_id = ref.rstrip("/").rsplit("/", 1)[-1]
        owners = self.group_owners[group_id]
        if owner_id in owners:
            return graph_error(
                400,
                "Request_BadRequest",
                "One or more added object references already exist for the following modified "
                "properties: 'owners'.",
            )
        owners.append(owner_id)
        return Response(204)

    def has_permission(self, *any_of: str) -> bool:
        """Whether the app holds one of these application permissions: those the file lists (applicationPermissions;
        absent: every permission the portal uses), less those it denies (deniedPermissions)."""
        held = (
            set(any_of)
            if self.application_permissions is None
            else set(any_of) & self.application_permissions
        )
        return bool(held - self.denied_permissions)

    def _add_member(self, group_id: str, body: bytes | None) -> Response:
        """`POST /groups/{id}/members/$ref` (api-reference/v1.0/api/group-post-members.md): 204, 400 when the object
        is already a member, 404 for an unknown object, 403 without GroupMember.ReadWrite.All."""
        if not self.has_permission(
            "GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All"
        ):
            return graph_error(
                403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
            )
        group = self.groups.get(group_id)
        if group is None:
            return graph_error(404, "Request_ResourceNotFound", f"Resource '{group_id}' does not exist.")
        try:
            ref = json.loads(body or b"{}")["@odata.id"]
        except (ValueError, KeyError, TypeError):
            return graph_error(400, "Request_BadRequest", "Invalid request body.")
        member_id = str(ref).rstrip("/").rsplit("/", 1)[-1]
        if not self.has_object(member_id):
            return not_found(member_id)
        with self._lock:
            if member_id in group["members"]:
                return graph_error(
                    400,
                    "Request_BadRequest",
                    "One or more added object references already exist for the following modified "
                    "properties: 'members'.",
                )
            group["members"].append(member_id)
        if self.on_member_added is not None:
            self.on_member_added(group_id, member_id)
        return Response(204)

    def has_object(self, object_id: str) -> bool:
        return object_id in self.devices_by_id or object_id in self.groups or object_id in self.users

    def add_members(self, additions: list[tuple[str, str]]) -> None:
        """Members added earlier (by another process): applied when the tenant is loaded."""
        for group_id, member_id in additions:
            group = self.groups.get(group_id)
            if (
                group is not None
                and member_id not in group["members"]
                and (member_id in self.devices_by_id or member_id in self.groups or member_id in self.users)
            ):
                group["members"].append(member_id)

    def _listed(self, managed: dict) -> dict:
        """A managed device as Intune's list answers it: some leave architecture, SKU and workloads blank."""
        return {**managed, **LIST_BLANKS} if managed["id"] in self.list_blank_ids else managed

    def _managed_device(self, managed_id: str, query: dict[str, str], parts) -> Response:
        """One managed device, every property filled (api-reference/beta/api/intune-devices-manageddevice-get.md)."""
        managed = self.managed_by_id.get(managed_id)
        if managed is None:
            return intune_error(404, "ResourceNotFound", f"Resource with id '{managed_id}' was not found.")
        context = f"https://{GRAPH_HOST}{parts.path.rsplit('/', 1)[0]}/$metadata#deviceManagement/managedDevices/$entity"
        return json_response(200, {"@odata.context": context, **select(managed, query)})

    def _batch(self, version: str, body: bytes | None, headers: dict[str, str]) -> Response:
        """JSON batching (concepts/json-batching.md): each request runs through the same handler, faults and
        throttling included, and the answers come back in another order than the requests."""
        try:
            requests = json.loads(body or b"{}")["requests"]
        except (ValueError, KeyError, TypeError):
            return graph_error(400, "BadRequest", "Invalid batch payload format.")
        if not isinstance(requests, list) or not all(
            isinstance(r, dict)
            and {"id", "method", "url"} <= set(r)
            and isinstance(r.get("headers", {}), dict)
            for r in requests
        ):
            return graph_error(
                400,
                "BadRequest",
                "Each request in a batch needs an id, a method and a url, and its headers are an object.",
            )
        if not 1 <= len(requests) <= BATCH_LIMIT:
            return graph_error(
                400, "BadRequest", f"The batch holds {len(requests)} requests; the limit is 20."
            )
        if len({str(r["id"]).lower() for r in requests}) != len(requests):
            return graph_error(400, "BadRequest", "Batch request ids must be unique.")
        if any(str(r["url"]).startswith(("http", "/$batch", "$batch")) for r in requests):
            return graph_error(
                400, "BadRequest", "A batched request's url is relative to the batch's version."
            )
        responses = []
        for request in requests:
            url = f"https://{GRAPH_HOST}/{version}/{str(request['url']).lstrip('/')}"
            item_body = json.dumps(request["body"]).encode() if request.get("body") is not None else None
            try:
                answer = self.handle(
                    str(request["method"]).upper(), url, {**headers, **request.get("headers", {})}, item_body
                )
            except TimeoutError:
                answer = graph_error(504, "GatewayTimeout", "The request timed out.")
            try:
                answered: Any = json.loads(answer.body) if answer.body else None
            except ValueError:
                answered = answer.body.decode(errors="replace")
            responses.append(
                {"id": request["id"], "status": answer.status, "headers": answer.headers, "body": answered}
            )
        return json_response(200, {"responses": responses[::-1]})

    def _filtered(self, wanted: str) -> list[dict] | None:
        """Managed devices that match a `$filter` of clauses joined by `and` (a property eq a quoted string, or
        a date-time property compared with a time), computed once per filter (pages ask again and again); None
        for a filter the simulation does not understand, such as a string with a lone quote."""
        cached = self._filter_cache.get(wanted)
        if cached is not None:
            return cached
        if not re.fullmatch(rf"{FILTER_CLAUSE}(?: and {FILTER_CLAUSE})*", wanted):
            return None
        clauses: list[tuple[str, Any, Any, bool]] = []  # (property, comparison, value, whether a time)
        for name, op, literal in re.findall(FILTER_CLAUSE, wanted):
            if literal.startswith("'") and op != "eq":
                return None
            timed = not literal.startswith("'")
            clauses.append(
                (
                    name,
                    COMPARISONS[op],
                    _moment(literal) if timed else literal[1:-1].replace("''", "'"),
                    timed,
                )
            )

        def matches(managed: dict) -> bool:
            for name, compare, value, timed in clauses:
                have = _moment(managed.get(name)) if timed else managed.get(name) or ""
                if have is None or not compare(have, value):
                    return False
            return True

        found = [m for m in self.managed_devices if matches(m)]
        with self._lock:
            if len(self._filter_cache) >= 8:  # a run's filter changes with its time: keep the memory bounded
                self._filter_cache.pop(next(iter(self._filter_cache)))
            self._filter_cache[wanted] = found
        return found

    def members_of_type(self, group: dict, odata_type: str) -> list[str]:
        """The IDs of a group's members of one type, as Graph finds them through its index: kept until the group's
        members change (they are only appended, or replaced as a whole), where scanning the registration group's
        100,000 members cost the group page 30-40 ms a view."""
        members = group["members"]
        key = (group["id"], odata_type)
        kept = self._typed_members.get(key)
        if kept is not None and kept[0] is members and kept[1] == len(members):
            return kept[2]
        typed = [m for m in members if self.type_of(m) == odata_type]
        with self._lock:
            self._typed_members[key] = (members, len(members), typed)
        return typed

    def type_of(self, object_id: str) -> str:
        if object_id in self.devices_by_id:
            return "#microsoft.graph.device"
        if object_id in self.groups:
            return "#microsoft.graph.group"
        return "#microsoft.graph.user"

    def _page(
        self,
        items: list,
        query: dict[str, str],
        parts,
        typed: bool = False,
        resolve=None,
        intune: bool = False,
        shape=None,
    ) -> Response:
        """One page of `items` as Graph pages a list: `$top` (within the service's limits), `$skiptoken` in the
        @odata.nextLink, and with `$count=true` (an advanced query) the whole list's @odata.count."""
        most, default = (
            (INTUNE_MAX_PAGE_SIZE, INTUNE_DEFAULT_PAGE_SIZE) if intune else (MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE)
        )
        try:
            top = int(query.get("$top", default))
        except ValueError:
            return graph_error(400, "BadRequest", "Invalid value for $top.")
        if not 1 <= top <= most:
            message = f"Invalid page size specified: '{top}'. Must be between 1 and {most} inclusive."
            return (
                intune_error(400, "BadRequest", message)
                if intune
                else graph_error(400, "Request_BadRequest", message)
            )
        offset = 0
        if "$skiptoken" in query:
            try:
                offset = int(base64.urlsafe_b64decode(query["$skiptoken"].encode()).decode().split(":", 1)[1])
            except (ValueError, IndexError):
                return graph_error(400, "Request_BadRequest", "Invalid skip token.")
        chunk = items[offset : offset + top]
        if resolve is not None:
            chunk = [resolve(item) for item in chunk]
        shape = shape or selector(query, keep_type=typed)
        payload: dict[str, Any] = {
            "@odata.context": f"https://{GRAPH_HOST}{parts.path}/$metadata",
            "value": [shape(item) for item in chunk],
        }
        if query.get("$count") == "true":
            payload["@odata.count"] = len(items)
        if offset + top < len(items):
            skip = base64.urlsafe_b64encode(f"offset:{offset + top}".encode()).decode()
            next_query = {k: v for k, v in query.items() if k != "$skiptoken"} | {"$skiptoken": skip}
            payload["@odata.nextLink"] = f"https://{GRAPH_HOST}{parts.path}?{urlencode(next_query)}"
        return json_response(200, payload)


def is_dynamic(group: dict) -> bool:
    return "DynamicMembership" in (group.get("groupTypes") or [])


def compute_dynamic_members(group: dict, devices: list[dict]) -> None:
    """A dynamic group whose rule processing is On holds the directory's devices its rule matches, as Entra
    computes them (api-reference/v1.0/resources/group.md: groupTypes, membershipRule,
    membershipRuleProcessingState); when processing is Paused it keeps the members the file lists."""
    if not is_dynamic(group):
        return
    rule = group.get("membershipRule")
    if not isinstance(rule, str):
        raise TenantFileError(f"dynamic group {group['displayName']!r} has no membershipRule")
    state = group.setdefault("membershipRuleProcessingState", "On")
    if state not in ("On", "Paused"):
        raise TenantFileError(
            f"dynamic group {group['displayName']!r}: membershipRuleProcessingState is On or Paused, not {state!r}"
        )
    try:
        parsed = membership_rules.parse(rule)
    except membership_rules.RuleError as exc:
        raise TenantFileError(f"dynamic group {group['displayName']!r}: {exc}") from exc
    if state == "On":
        group["members"] = [device["id"] for device in parsed.filter(devices)]


def selector(query: dict[str, str], keep_type: bool = False) -> Callable[[dict], dict]:
    """What `$select` keeps of an object, read from the query once for a page rather than once an object (a
    first discovery of 100,000 devices is served about 300,000 of them). A property the object lacks comes as
    null; with keep_type (a directory object of any type) also the object's @odata.type, and a property only a
    device has is left out of the others' answers."""
    fields = [f.strip() for f in query.get("$select", "").split(",") if f.strip()]
    if not fields:
        return dict
    if not keep_type:
        return lambda item: {name: item.get(name) for name in fields}

    def typed(item: dict) -> dict:
        out = {"@odata.type": item["@odata.type"]} if "@odata.type" in item else {}
        is_device = item.get("@odata.type") == "#microsoft.graph.device"
        for name in fields:
            if name in item:
                out[name] = item[name]
            elif is_device or name == "id":
                out[name] = None
        return out

    return typed


def select(item: dict, query: dict[str, str], keep_type: bool = False) -> dict:
    return selector(query, keep_type)(item)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, orjson.dumps(payload), {"Content-Type": "application/json", **(headers or {})})


def list_blank_ids(simulation: Any, managed_by_id: dict[str, dict]) -> frozenset[str]:
    """The managed devices whose list answers leave blanks: those named, and a stable share of the rest."""
    if not isinstance(simulation, dict):
        raise TenantFileError("simulation is a JSON object")
    share = simulation.get("listBlankShare", 0)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise TenantFileError(f"simulation.listBlankShare is a number from 0 to 1, not {share!r}")
    named = simulation.get("listBlankIds", [])
    if not isinstance(named, list) or any(managed_id not in managed_by_id for managed_id in named):
        raise TenantFileError("simulation.listBlankIds lists IDs of the file's managed devices")
    # A hash of the ID, not a random draw: the same devices list blank at every load, as a real tenant's do.
    limit = share * 2**64
    return frozenset(named) | {
        managed_id
        for managed_id in managed_by_id
        if int.from_bytes(hashlib.blake2b(managed_id.encode(), digest_size=8).digest()) < limit
    }


def not_found(object_id: str) -> Response:
    """Graph's answer for a directory object that does not exist."""
    return graph_error(
        404,
        "Request_ResourceNotFound",
        f"Resource '{object_id}' does not exist or one of its queried reference-property objects are not present.",
    )


def graph_error(status: int, code: str, message: str, request_id: str = "") -> Response:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    request_id = request_id or str(uuid.uuid4())
    return json_response(
        status,
        {
            "error": {
                "code": code,
                "message": message,
                "innerError": {"date": now, "request-id": request_id, "client-request-id": request_id},
            }
        },
    )


def intune_error(status: int, code: str, message: str) -> Response:
    """Intune's errors: Graph's error JSON whose message is Intune's own error JSON, as text."""
    activity = str(uuid.uuid4())
    inner = {
        "_version": 3,
        "Message": f"{message} - Operation ID (for customer support): 00000000-0000-0000-0000-000000000000 - "
        f"Activity ID: {activity} - Url: {INTUNE_SERVICE_URL}/managedDevices?api-version=2025-01-08",
        "CustomApiErrorPhrase": "",
        "RetryAfter": None,
        "ErrorSourceService": "",
        "HttpHeaders": "{}",
    }
    return graph_error(status, code, json.dumps(inner, indent=2).replace("\n", "\r\n"), request_id=activity)


def entra_error(status: int, error: str, description: str) -> Response:
    return json_response(
        status,
        {
            "error": error,
            "error_description": description,
            "error_codes": [int(description[5:12] or 0)]
            if description.startswith("AADSTS") and description[5:12].isdigit()
            else [],
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": secrets.token_hex(8),
            "correlation_id": secrets.token_hex(8),
        },
    )
