"""Delta reads: what changed in a Graph collection since the last read, by following its delta links.

Microsoft's reference: concepts/delta-query-overview.md, api-reference/v1.0/api/device-delta.md and
api-reference/v1.0/api/group-delta.md. A round starts at `/delta` (with any `$select` and `$filter`, which
Graph encodes into the links), follows every `@odata.nextLink`, and ends with an `@odata.deltaLink` where the
next round starts. Removed objects carry `@removed`; for groups, `members@delta` lists member changes with only
`id` and `@odata.type`. Graph answers 410 Gone (or a sync-state error) when a token is too old: start over.
Group delta filters on `id eq` for at most 50 objects: the registration group has a round of its own (its member
changes say which groups are nested), and its nested groups share a round, 50 at most, with one link (an hourly
run over an unchanged tenant asks once for all of them); where that round fails, discovery reads each of its
groups on its own, so that a nested group that cannot be read leaves only its own members as they were.
Intune's managed devices have no delta: `directory.managed_device_pages(since=...)` reads those synced since.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .directory import DEVICE_SELECT, quote
from .graph import GraphClient, GraphError

# Error codes Graph uses for a delta token it no longer knows, besides the 410 status.
EXPIRED_CODES = frozenset({"syncStateNotFound", "syncStateInvalid", "resyncRequired", "ResyncRequired"})
GROUP_SELECT = "displayName,members"


class DeltaExpired(Exception):
    """The delta link is too old (or unknown to Graph): the collection must be read in full again."""


def is_expired(exc: GraphError) -> bool:
    return exc.status == 410 or exc.code in EXPIRED_CODES


@dataclass
class DeltaRound:
    """The pages of one delta round; once they are all read, `delta_link` is where the next round starts.

    `full` says whether the round started without a link, so that it lists the whole collection."""

    graph: GraphClient
    url: str
    params: dict[str, Any] | None = None
    full: bool = True
    delta_link: str = field(default="", init=False)

    def __iter__(self) -> Iterator[list[dict]]:
        next_url: str | None = self.url
        params = self.params
        while next_url:
            try:
                payload = self.graph.get(next_url, params=params)
            except GraphError as exc:
                if is_expired(exc) and not self.full:
                    raise DeltaExpired(str(exc)) from exc
                raise
            params = None  # the links carry the query
            items = payload.get("value") if isinstance(payload, dict) else None
            if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                raise GraphError(
                    f"Graph sent a malformed delta page for {next_url.split('?', 1)[0]}: "
                    "no list of objects in 'value'",
                    url=next_url,
                )
            yield items
            next_url = payload.get("@odata.nextLink")
            if next_url is None:
                link = payload.get("@odata.deltaLink")
                if not isinstance(link, str) or not link:
                    raise GraphError("Graph ended a delta round without an @odata.deltaLink", url=self.url)
                self.delta_link = link
            elif not isinstance(next_url, str):
                raise GraphError("Graph sent a malformed @odata.nextLink in a delta round", url=self.url)


def device_changes(graph: GraphClient, link: str = "") -> DeltaRound:
    """Entra device records changed since `link`, or every record (a full round) without one."""
    if link:
        return DeltaRound(graph, link, full=False)
    return DeltaRound(graph, "/v1.0/devices/delta", {"$select": DEVICE_SELECT})


MAX_GROUPS_FILTERED = 50  # `id eq` expressions a group delta's $filter takes (group-delta.md)


def group_changes(graph: GraphClient, group_ids: Sequence[str], link: str = "") -> DeltaRound:
    """The name and member changes of up to 50 groups in one round since `link` (the round's own), or their whole
    memberships without one."""
    if link:
        return DeltaRound(graph, link, full=False)
    if not 1 <= len(group_ids) <= MAX_GROUPS_FILTERED:
        raise ValueError(
            f"a group delta round filters on 1 to {MAX_GROUPS_FILTERED} groups, not {len(group_ids)}"
        )
    expression = " or ".join(f"id eq {quote(group_id)}" for group_id in group_ids)
    return DeltaRound(graph, "/v1.0/groups/delta", {"$filter": expression, "$select": GROUP_SELECT})
