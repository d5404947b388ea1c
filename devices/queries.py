"""The device list of a tab, searched, filtered and sorted: shared by the tabs, the export, the command and the API."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, F, Q, QuerySet

from accounts.models import AuditEvent

from .checks import LAST_INTUNE_CHECK_IN, PREREQUISITE_CHECKS, READINESS_CHECKS
from .columns import ANNOTATED, COLUMNS_BY_KEY
from .models import (
    COVERING_ORDER,
    TAB_STATUSES,
    Device,
    DiscoveryRun,
    JoinType,
    Management,
    ReadinessStatus,
    ReportFreshness,
    Ring,
    Tab,
    report_freshness_q,
)


class InvalidQuery(ValueError):
    """A parameter that names no tab, column or filter value: a clear 400, never a guess."""


TAB_ALL = "all"
NO_RING = "none"
PAGE_SIZES = (25, 50, 100, 250)
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = PAGE_SIZES[-1]
MAX_PAGE = 100_000
MAX_SEARCH = 200
COUNTS_SECONDS = (
    60  # the longest a tab count can lag a write that is neither a discovery run nor a device action
)


@dataclass(frozen=True)
class Filter:
    """One filter of the blade: its URL parameter, label, and the values it accepts (value, label)."""

    param: str
    label: str
    choices: tuple[tuple[str, str], ...]

    def values(self) -> set[str]:
        return {value for value, _ in self.choices}


def tab_status_choices(tab: str) -> tuple[tuple[str, str], ...]:
    statuses = TAB_STATUSES.get(tab, tuple(ReadinessStatus.values))
    return tuple((status, ReadinessStatus(status).label) for status in statuses)


FAILED_CHECK_NAMES = (
    *PREREQUISITE_CHECKS,
    *(name for name in READINESS_CHECKS if name != LAST_INTUNE_CHECK_IN),
)


def filters_for(tab: str) -> tuple[Filter, ...]:
    """The filters a tab offers; each value is checked against these choices, so a forged one is refused."""
    return (
        Filter("status", "Readiness status", tab_status_choices(tab)),
        Filter("ring", "Ring", (*Ring.choices, (NO_RING, "No ring"))),
        Filter("failed_check", "Failed check", tuple((name, name) for name in FAILED_CHECK_NAMES)),
        Filter("join_type", "Join type", tuple(JoinType.choices)),
        Filter("management", "Management", tuple(Management.choices)),
        Filter("report", "Readiness report", tuple(ReportFreshness.choices)),
    )


FILTER_PARAMS = tuple(f.param for f in filters_for(TAB_ALL))


def tab_devices(tab: str) -> QuerySet[Device]:
    if tab == TAB_ALL:
        return Device.objects.all()
    if tab not in TAB_STATUSES:
        raise InvalidQuery(f"unknown tab {tab!r}: use one of {', '.join([*Tab.values, TAB_ALL])}")
    return Device.objects.filter(tab=tab)


# From this many characters a search matches any part of a device name or user (a trigram index serves it); a
# shorter one matches their start (a prefix index serves it), as any part of one or two letters matches most of the
# tab and costs a read of all of it at 100,000 devices.
ANYWHERE_FROM = 3


def search(devices: QuerySet[Device], q: str) -> QuerySet[Device]:
    """Device name or primary user (any part of it, or its start for one or two characters), Azure AD device ID or
    serial number (its start, as admins read them off a label or a ticket), whatever the case: matched against the
    columns the database keeps upper-cased (Device.search_*)."""
    folded = folded_as_stored(q)
    lookup = "contains" if len(q) >= ANYWHERE_FROM else "startswith"
    matches = Q(**{f"search_name__{lookup}": folded})
    if set(folded) <= GUID_CHARACTERS:
        # Only a search that can start a device ID tests them: in the name order's walk each test is paid on every
        # device passed (a search for "HR-LT" passes 23,500 names before the first HR-LT at 100,000 devices).
        matches |= Q(search_id__startswith=folded)
    return devices.filter(
        matches | Q(search_serial__startswith=folded) | Q(**{f"search_user__{lookup}": folded})
    )


# The characters of an Azure AD device ID, upper-cased as search_id keeps it. Graph's reference types deviceId as a
# string (api-reference/v1.0/resources/device.md); Entra ID sets a GUID, and the portal already holds device IDs to
# that elsewhere (registrations.GUID refuses any other through the API, group_members.is_guid in a bulk add).
GUID_CHARACTERS = frozenset("0123456789ABCDEF-")


def folded_as_stored(q: str) -> str:
    """The search in upper case as the database folds the search columns. Python folds ASCII the same; beyond it
    the two differ ("ß" is "SS" to Python, itself to PostgreSQL; SQLite folds ASCII only), so the database folds it."""
    if q.isascii():
        return q.upper()
    with connection.cursor() as cursor:
        cursor.execute("SELECT UPPER(%s)", [q])
        return cursor.fetchone()[0]


def failed_check_q(name: str) -> Q:
    """failed_checks holds names joined by "; ": match a whole name, wherever it sits."""
    return (
        Q(failed_checks=name)
        | Q(failed_checks__startswith=f"{name}; ")
        | Q(failed_checks__endswith=f"; {name}")
        | Q(failed_checks__contains=f"; {name}; ")
    )


def active_filters(tab: str, params: Mapping[str, str]) -> dict[str, str]:
    """The filter values in `params`, each checked against its choices."""
    chosen: dict[str, str] = {}
    for f in filters_for(tab):
        value = (params.get(f.param) or "").strip()
        if not value:
            continue
        if value not in f.values():
            raise InvalidQuery(f"{f.label.lower()} {value!r} is not one of the choices")
        chosen[f.param] = value
    return chosen


def apply_filters(devices: QuerySet[Device], chosen: Mapping[str, str]) -> QuerySet[Device]:
    if "status" in chosen:
        devices = devices.filter(readiness_status=chosen["status"])
    if "ring" in chosen:
        devices = devices.filter(ring="" if chosen["ring"] == NO_RING else chosen["ring"])
    if "failed_check" in chosen:
        devices = devices.filter(failed_check_q(chosen["failed_check"]))
    if "join_type" in chosen:
        devices = devices.filter(join_type=chosen["join_type"])
    if "management" in chosen:
        devices = devices.filter(management=chosen["management"])
    if "report" in chosen:
        devices = devices.filter(report_freshness_q(chosen["report"]))
    return devices


def sort_key(params: Mapping[str, str]) -> str:
    sort = params.get("sort") or "device_name"
    column = COLUMNS_BY_KEY.get(sort.removeprefix("-"))
    if column is None or not column.sortable:
        raise InvalidQuery(f"cannot sort by {sort!r}")
    return sort


def search_text(params: Mapping[str, str]) -> str:
    q = (params.get("q") or "").strip()
    if len(q) > MAX_SEARCH:
        raise InvalidQuery(f"the search is longer than {MAX_SEARCH} characters")
    if "\x00" in q:  # PostgreSQL refuses NUL in text; no device name or serial number holds one
        raise InvalidQuery("the search contains a NUL character")
    return q


def device_list(tab: str, params: Mapping[str, str] | None = None) -> QuerySet[Device]:
    """The devices a tab shows for the search (q), the filters (status, ring, failed_check, join_type,
    management) and the sort (sort=key or -key) in `params`; any value that is not a choice raises InvalidQuery."""
    params = params or {}
    devices = tab_devices(tab)
    q = search_text(params)
    if q:
        devices = search(devices, q)
    devices = apply_filters(devices, active_filters(tab, params))
    sort = sort_key(params)
    column = COLUMNS_BY_KEY[sort.removeprefix("-")]
    if "__" in column.stored:
        # Every device has its row there (DeviceSighting): an inner join loses none, and lets the database read
        # that table's index in order instead of joining and sorting the whole tab.
        devices = devices.filter(**{f"{column.stored.split('__')[0]}__isnull": False})
    order = column.order_by()
    # Blanks last, or first in descending order, on every database: PostgreSQL's own order (and its indexes'),
    # which SQLite would otherwise turn around.
    if sort.startswith("-"):
        return devices.order_by(order.desc(nulls_first=True), F("pk").desc())
    return devices.order_by(order.asc(nulls_last=True), F("pk").asc())


def is_narrowed(tab: str, params: Mapping[str, str]) -> bool:
    """Whether a search or filter narrows the tab (else its count is the tab count, no extra COUNT)."""
    return bool(search_text(params) or active_filters(tab, params))


def count_up_to(devices: QuerySet[Device], limit: int, searched: bool = False) -> tuple[int, bool]:
    """How many devices match, counted no further than `limit`: (the count, whether it is all of them).

    A search or filter that matches thousands of devices would otherwise be counted whole, reading a heap page per
    match (50 to 100 ms at 100,000 devices for a one- or two-letter search) to print a number nobody pages to.

    A search (`searched`) is counted through its own indexes (prefix and trigram, combined in a bitmap): index
    scans are priced out for this one statement. Otherwise the planner walks the name order's covering index,
    testing the search on every device it passes (31 ms for "A" at 100,000 devices, against 10 ms)."""
    query = devices.order_by()[: limit + 1]
    if searched and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT set_config('enable_indexscan', 'off', false), set_config('enable_indexonlyscan', 'off', false)"
            )
            try:
                counted = query.count()
            finally:  # as RESET would leave them, for whatever this connection runs next
                cursor.execute(
                    "SELECT set_config(name, reset_val, false) FROM pg_settings "
                    "WHERE name IN ('enable_indexscan', 'enable_indexonlyscan')"
                )
    else:
        counted = query.count()
    return (counted, True) if counted <= limit else (limit, False)


def order_carries_filters(sort: str) -> bool:
    """Whether the sort's index carries every column a search or filter tests (the name order's, COVERING_ORDER):
    walking it in order finds the matching devices without reading their rows."""
    return COLUMNS_BY_KEY[sort.removeprefix("-")].field == COVERING_ORDER


def keys_up_to(devices: QuerySet[Device], limit: int) -> tuple[list[int], int, bool]:
    """The keys of the first `limit` devices in the list's order, with (the count, whether it is all of them) as
    count_up_to gives them: one statement for a page and its count.

    In an order whose index carries the search and filters (order_carries_filters), the walk to the page goes on
    to the limit instead of a second statement counting the same devices again: a two-letter search that matches
    thousands of devices took 4 ms for its page and 9 ms for its count at 100,000 devices, 6 ms for both; the
    planner still turns to the search's own indexes (and sorts what they find) when it expects few matches."""
    keys = list(devices.values_list("pk", flat=True)[: limit + 1])
    return keys[:limit], min(len(keys), limit), len(keys) <= limit


def paging(params: Mapping[str, str]) -> tuple[int, int]:
    """The page number and page size in `params`; an oversized page size or a bad number raises InvalidQuery."""
    try:
        page = int(params.get("page") or 1)
        per_page = int(params.get("per_page") or DEFAULT_PAGE_SIZE)
    except ValueError as exc:
        raise InvalidQuery("page and per_page must be whole numbers") from exc
    if not 1 <= per_page <= MAX_PAGE_SIZE:
        raise InvalidQuery(f"per_page must be between 1 and {MAX_PAGE_SIZE}")
    if not 1 <= page <= MAX_PAGE:
        raise InvalidQuery(f"page must be between 1 and {MAX_PAGE}")
    return page, per_page


def status_ring_counts() -> dict[tuple[str, str], int]:
    """Devices per (readiness status, ring), in one GROUP BY that an index answers."""
    rows = Device.objects.order_by().values_list("readiness_status", "ring").annotate(n=Count("*"))
    return {(status, ring): n for status, ring, n in rows}


def devices_marker() -> tuple:
    """Changes whenever the devices may have: every write to them is a discovery run's (whose row's status and
    progress move as it goes) or a device action's (recorded in the audit log once written); a device added from
    anywhere else changes the newest ID, and any other write shows within the minute."""
    run = DiscoveryRun.objects.order_by("-id").values_list("id", "status", "progress", "finished_at").first()
    event = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    newest = (
        Device.objects.order_by("-id").values_list("id", flat=True).first()
    )  # a device added from anywhere
    return run, event, newest, int(time.time() // COUNTS_SECONDS)


def tab_counts() -> dict[tuple[str, str], int]:
    """status_ring_counts, counted once per change of the devices (see devices_marker) rather than per page:
    right after a discovery the table has no visibility map or statistics yet, and a count of 100,000 rows
    reads the whole table (hundreds of ms) until autovacuum has come by."""
    key = "blade-tab-counts:" + hashlib.sha256(repr(devices_marker()).encode()).hexdigest()
    counts = cache.get(key)
    if counts is None:
        counts = status_ring_counts()
        cache.set(key, counts, 2 * COUNTS_SECONDS)
    return counts


def with_columns(devices: QuerySet[Device], columns, *always: str) -> QuerySet[Device]:
    """Load only what the shown columns (and `always`) read; the sighting is joined only when a column shows it
    (with_annotations)."""
    fields = {"pk", *always, *(c.field for c in columns if c.annotation is None)}
    return with_annotations(devices.only(*fields), [c.field for c in columns])


def with_annotations(devices: QuerySet[Device], fields) -> QuerySet[Device]:
    """The values among `fields` that the database works out (Column.annotation), annotated: only on the query
    that reads them, as their join would cost the page's key walk its index-ordered plan."""
    return devices.annotate(
        **{name: column.annotation() for name in fields if (column := ANNOTATED.get(name)) is not None}
    )
