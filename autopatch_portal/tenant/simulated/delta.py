"""The simulated tenant's delta queries (`/devices/delta`, `/groups/delta`) and members cast to one type.

A round's first request computes the changes against the state the previous round's token recorded (every
object, without a token) and pages through them; its last page carries a new `@odata.deltaLink`. Tokens are
kept per tenant ID in this process, so they outlive a reload of the tenant file (a file that changed is how
tests and benchmarks change the tenant); an unknown or expired token answers 410 Gone, as Graph does.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from .tenant import GRAPH_HOST, MAX_PAGE_SIZE, Response, SimulatedTenant, graph_error, json_response, selector

TOKEN_LIFETIME = 7 * 24 * 3600  # Graph's directory delta tokens last about seven days
TOKENS_KEPT = 2  # per tenant, collection and query: the last rounds' states


@dataclass
class Round:
    """The changes one round pages through, and the state its delta link will stand for."""

    pages: list[list[dict]]
    state: Any
    query: dict[str, str]


@dataclass
class Tokens:
    states: OrderedDict[str, tuple[float, Any, dict[str, str]]] = field(default_factory=OrderedDict)
    rounds: dict[str, Round] = field(default_factory=dict)


_lock = threading.Lock()
_tokens: dict[tuple[str, str], Tokens] = {}


def install(tenant: SimulatedTenant) -> None:
    """Teach `tenant` Graph's delta functions (idempotent)."""
    if getattr(tenant, "delta_installed", False):
        return
    tenant.delta_installed = True  # type: ignore[attr-defined]
    tenant.extra_routes.extend(
        [
            ("GET", GRAPH_HOST, r"/v1\.0/devices/delta", _devices_delta),
            ("GET", GRAPH_HOST, r"/v1\.0/groups/delta", _groups_delta),
            (
                "GET",
                GRAPH_HOST,
                r"/v1\.0/groups/([^/]+)/members/microsoft\.graph\.(user|group|device)",
                _members_of_type,
            ),
        ]
    )


def expire_tokens(tenant_id: str) -> None:
    """Forget every delta token of the tenant, as when they are older than Graph keeps them."""
    with _lock:
        for key in [key for key in _tokens if key[0] == tenant_id]:
            del _tokens[key]


def _issue(tokens: Tokens, state: Any, query: dict[str, str]) -> str:
    token = secrets.token_urlsafe(18)
    same = [t for t, (_, _, kept_query) in tokens.states.items() if kept_query == query]
    for old in same[: max(0, len(same) - TOKENS_KEPT + 1)]:
        del tokens.states[old]
    tokens.states[token] = (time.time(), state, query)
    return token


def _expired() -> Response:
    return graph_error(
        410,
        "syncStateNotFound",
        "The sync state generation is not found or has expired. "
        "Start a new round of change tracking without a delta token.",
    )


def _answer(tenant: SimulatedTenant, path: str, query: dict[str, str], collection: str, changes) -> Response:
    """Serve one page of a round: the first request of a round computes it, $skiptoken pages through it."""
    key = (tenant.tenant_id, collection)
    with _lock:
        tokens = _tokens.setdefault(key, Tokens())
        if "$skiptoken" in query:
            round_id, _, index = query["$skiptoken"].partition(".")
            current = tokens.rounds.get(round_id)
            if current is None or not index.isdigit() or int(index) >= len(current.pages):
                return graph_error(400, "Request_BadRequest", "Invalid skip token.")
            page_index = int(index)
        else:
            previous = None
            round_query = query
            if "$deltatoken" in query:
                kept = tokens.states.get(query["$deltatoken"])
                if kept is None or time.time() - kept[0] > TOKEN_LIFETIME:
                    return _expired()
                previous, round_query = kept[1], kept[2]
            try:
                pages, state = changes(tenant, round_query, previous)
            except ValueError as exc:
                return graph_error(400, "Request_UnsupportedQuery", str(exc))
            round_id = secrets.token_urlsafe(9)
            tokens.rounds = {round_id: Round(pages or [[]], state, round_query)}  # one round at a time
            current, page_index = tokens.rounds[round_id], 0
        page = current.pages[page_index]
        payload: dict[str, Any] = {
            "@odata.context": f"https://{GRAPH_HOST}{path}/$metadata",
            "value": page.shown() if isinstance(page, Projected) else page,
        }
        base = f"https://{GRAPH_HOST}{path}"
        if page_index + 1 < len(current.pages):
            payload["@odata.nextLink"] = (
                f"{base}?{urlencode({'$skiptoken': f'{round_id}.{page_index + 1}'}, safe='$')}"
            )
        else:
            token = _issue(tokens, current.state, current.query)
            payload["@odata.deltaLink"] = f"{base}?{urlencode({'$deltatoken': token}, safe='$')}"
            tokens.rounds.pop(round_id, None)
    return json_response(200, payload)


def _paged(items: list[dict]) -> list[list[dict]]:
    return [items[i : i + MAX_PAGE_SIZE] for i in range(0, len(items), MAX_PAGE_SIZE)]


class Projected(list):
    """A page of devices kept as the tenant's own objects, projected with $select only when served."""

    def __init__(self, items: list[dict], query: dict[str, str]):
        super().__init__(items)
        self.query = query

    def shown(self) -> list[dict]:
        project = selector(self.query)
        return [item if "@removed" in item else project(item) for item in self]


def _device_changes(tenant: SimulatedTenant, query: dict[str, str], previous: dict[str, int] | None):
    # The state a token stands for: a hash of each device as selected (small enough for 100,000 devices).
    state: dict[str, int] = {}
    changed: list[dict] = []
    project = selector(query)
    for device in tenant.devices:
        digest = hash(orjson.dumps(project(device)))
        state[device["id"]] = digest
        if previous is None or previous.get(device["id"]) != digest:
            changed.append(device)
    if previous is not None:
        changed.extend(
            {"id": gone, "@removed": {"reason": "deleted"}} for gone in previous.keys() - state.keys()
        )
    return [Projected(page, query) for page in _paged(changed)], state


def _devices_delta(tenant: SimulatedTenant, match, query: dict[str, str], headers, form) -> Response:
    return _answer(tenant, "/v1.0/devices/delta", query, "devices", _device_changes)


def _group_ids(expression: str) -> list[str]:
    """The ids of `id eq '...' or id eq '...'`, the only $filter group delta takes (at most 50)."""
    ids = []
    for part in expression.split(" or "):
        part = part.strip()
        if not (part.startswith("id eq '") and part.endswith("'")):
            raise ValueError(f"Unsupported query: $filter={expression}")
        ids.append(part[7:-1])
    if len(ids) > 50:
        raise ValueError("The $filter of a group delta query names at most 50 objects.")
    return ids


def _group_changes(tenant: SimulatedTenant, query: dict[str, str], previous: dict[str, tuple] | None):
    wanted = _group_ids(query["$filter"]) if query.get("$filter") else list(tenant.groups)
    state: dict[str, tuple[str, frozenset[str]]] = {}
    changed: list[dict] = []
    for group_id in wanted:
        group = tenant.groups.get(group_id)
        if group is None:
            continue
        members = frozenset(group["members"])
        state[group_id] = (group["displayName"], members)
        before = (previous or {}).get(group_id)
        added = members if before is None else members - before[1]
        gone = frozenset() if before is None else before[1] - members
        if before is not None and not added and not gone and before[0] == group["displayName"]:
            continue
        refs = [{"@odata.type": tenant.type_of(member), "id": member} for member in sorted(added)]
        refs += [
            {"@odata.type": tenant.type_of(member), "id": member, "@removed": {"reason": "deleted"}}
            for member in sorted(gone)
        ]
        # A large membership comes in several objects of the same group, each with part of members@delta.
        for start in range(0, max(len(refs), 1), MAX_PAGE_SIZE):
            changed.append(
                {
                    "id": group_id,
                    "displayName": group["displayName"],
                    "members@delta": refs[start : start + MAX_PAGE_SIZE],
                }
            )
    for group_id in (previous or {}).keys() - state.keys():
        changed.append({"id": group_id, "@removed": {"reason": "deleted"}})
    # Several groups to a page, as in Graph's own examples (delta-query-groups.md), up to a page's worth of member
    # changes: a large membership still comes one object to a page.
    pages: list[list[dict]] = []
    page: list[dict] = []
    size = 0
    for item in changed:
        refs = len(item.get("members@delta") or ())
        if page and size + refs > MAX_PAGE_SIZE:
            pages.append(page)
            page, size = [], 0
        page.append(item)
        size += refs
    if page:
        pages.append(page)
    return pages, state


def _groups_delta(tenant: SimulatedTenant, match, query: dict[str, str], headers, form) -> Response:
    return _answer(tenant, "/v1.0/groups/delta", query, "groups", _group_changes)


def _members_of_type(tenant: SimulatedTenant, match, query: dict[str, str], headers, form) -> Response:
    """`/groups/{id}/members/microsoft.graph.{type}`: an advanced query, so it needs ConsistencyLevel: eventual."""
    if not any(k.lower() == "consistencylevel" and v == "eventual" for k, v in headers.items()):
        return graph_error(
            400,
            "Request_UnsupportedQuery",
            "The specified filter to the reference property query "
            "is currently not supported. Add ConsistencyLevel: eventual and $count=true.",
        )
    group = tenant.groups.get(match.group(1))
    if group is None:
        return graph_error(404, "Request_ResourceNotFound", f"Resource '{match.group(1)}' does not exist.")
    wanted = f"#microsoft.graph.{match.group(2)}"
    members = [tenant._directory_object(m) for m in tenant.members_of_type(group, wanted)]
    project = selector(query)
    return tenant._page(
        members,
        query,
        urlsplit(f"https://{GRAPH_HOST}{match.string}"),  # the path the route matched: its nextLink's
        shape=lambda member: {"@odata.type": wanted, **project(member)},
    )
