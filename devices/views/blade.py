"""The device blade: one layout, three tabs; full page on first load, the #blade-main partial on HTMX requests."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape as escape_html

from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from accounts.access import capability_required, has_capability
from accounts.roles import Capability
from devices.actions import ACTIONS, MAX_DEVICES
from devices.columns import Column
from devices.models import TAB_STATUSES, Device, DiscoveryRun, ReadinessStatus, Ring, Tab
from devices.queries import (
    NO_RING,
    PAGE_SIZES,
    InvalidQuery,
    active_filters,
    count_up_to,
    device_list,
    filters_for,
    keys_up_to,
    order_carries_filters,
    paging,
    search_text,
    tab_counts,
    with_annotations,
)

from .common import TabState, bad_request, registration_group_link, saved_columns, tab_or_404
from .details import details_context

STATUS_BADGES = {
    ReadinessStatus.ACTIVE: "ok",
    ReadinessStatus.READINESS_FAILED: "warn",
    ReadinessStatus.INACTIVE: "muted",
    ReadinessStatus.PREREQUISITES_FAILED: "bad",
    ReadinessStatus.EXCLUDED: "muted",
}


@dataclass
class Header:
    column: Column
    sorted: str  # "", "ascending" or "descending" (aria-sort)
    url: str


class RowWriter:
    """The table's rows, written from the values a page reads (`fields`, one tuple a device): a checkbox where
    device actions are offered, the link column opening the fly-in (the blade with the device's details open,
    bookmarkable; Back closes it), the readiness status as a badge.

    Written here with the standard library's escape (what Django's escape calls), from values_list's tuples: at 250
    rows a page, the template's tags per cell took longer than everything else on the page, format_html's lazy
    wrappers per cell still took a third of the rows' time, and a model instance a row with a getattr per cell
    most of the rest."""

    def __init__(self, columns: list[Column], link_column: str, flyin_prefix: str, selectable: bool):
        self.selectable = selectable
        self.flyin_prefix = escape_html(flyin_prefix)
        # The details URL (devices:device) reversed once for the page, not once a row.
        head, _, tail = reverse("devices:device", args=[0]).rpartition("/0/")
        self.details_head, self.details_tail = escape_html(f"{head}/"), escape_html(f"/{tail}")
        self.cells = [(c.key, c.formatter(), c.key == link_column) for c in columns]
        self.fields = (
            "pk",
            "readiness_status",
            "device_name",
            "azure_ad_device_id",
            *(c.field for c in columns),
        )

    def row(self, values: tuple) -> str:
        pk, status, name, device_id, *shown = values
        cells = [f'<tr data-device="{pk}" data-status="{escape_html(status)}">']
        if self.selectable:
            cells.append(
                f'<td class="select-col"><input type="checkbox" class="row-select" name="ids" value="{pk}" '
                f'aria-label="Select {escape_html(name or device_id)}"></td>'
            )
        for (key, formatter, is_link), value in zip(self.cells, shown, strict=True):
            text = escape_html(formatter(value))
            if is_link:
                flyin = f"{self.flyin_prefix}{pk}"
                cell = (
                    f'<a class="device-link" href="{flyin}" hx-get="{self.details_head}{pk}{self.details_tail}" '
                    f'hx-target="#flyin-body" hx-swap="innerHTML" hx-push-url="{flyin}">'
                    f"{text or escape_html(name or device_id)}</a>"
                )
            elif key == "readiness_status":
                cell = f'<span class="badge badge-{STATUS_BADGES.get(status, "")}">{text}</span>'
            else:
                cell = text
            cells.append(f'<td data-column="{key}">{cell}</td>')
        cells.append("</tr>")
        return "".join(cells)

    def table_body(self, rows: list[tuple]) -> SafeString:
        # Every value is escaped in row(); the keys, badges and statuses are the portal's own.
        return mark_safe("".join(map(self.row, rows)))  # noqa: S308


def summary(counts: dict[tuple[str, str], int]) -> dict:
    """Devices per tab, per readiness status and per ring, for the tabs and the summary chart."""
    per_status = {status: 0 for status in ReadinessStatus.values}
    per_ring = {ring: 0 for ring in Ring.values}
    for (status, ring), n in counts.items():
        per_status[status] = per_status.get(status, 0) + n
        if ring and status in (
            ReadinessStatus.ACTIVE,
            ReadinessStatus.READINESS_FAILED,
            ReadinessStatus.INACTIVE,
        ):
            per_ring[ring] = per_ring.get(ring, 0) + n
    tabs = {tab: sum(per_status.get(s, 0) for s in statuses) for tab, statuses in TAB_STATUSES.items()}
    total = sum(per_status.values())
    registered = tabs[Tab.READY] + tabs[Tab.NOT_READY]
    ring_total = sum(per_ring.values()) or 1
    status_total = total or 1
    return {
        "tabs": tabs,
        "total": total,
        "registered": registered,
        "statuses": [
            (ReadinessStatus(s).label, n, STATUS_BADGES[s], round(100 * n / status_total, 1))
            for s, n in per_status.items()
        ],
        "rings": [(Ring(r).label, n, round(100 * n / ring_total, 1)) for r, n in per_ring.items()],
    }


def last_runs() -> tuple[DiscoveryRun | None, DiscoveryRun | None]:
    """The run under way (if any) and the last one that ended."""
    runs = DiscoveryRun.objects.with_progress().only(
        "trigger",
        "requested_by",
        "status",
        "queued_at",
        "started_at",
        "finished_at",
        "progress",
        "counts",
        "errors",
    )
    # One statement in the common case: at most one run holds the lease and one more waits for it, so the newest
    # three that are in progress or have ended hold both; the second statement only when three are in progress.
    recent = list(runs.filter(Q(in_progress_now=True) | ~Q(status=DiscoveryRun.Status.QUEUED))[:3])
    active = next((run for run in recent if run.in_progress_now), None)
    ended = next((run for run in recent if not run.in_progress_now), None)
    if ended is None and len(recent) == 3:
        ended = runs.filter(in_progress_now=False).exclude(status=DiscoveryRun.Status.QUEUED).first()
    return active, ended


def page_rows(
    devices: QuerySet[Device],
    start: int,
    per_page: int,
    total: int | None,
    first_keys: list[int] | None = None,
    fields: tuple[str, ...] = ("pk",),
) -> list[tuple]:
    """One page of rows, each the tuple of `fields` (the first "pk"), from the keys of the list's first devices
    when the count read them (queries.keys_up_to). Past the middle of a known total they are read from the end in
    reverse order: the database then skips fewer rows (the last page of 100,000 skips none instead of 99,950)."""
    if first_keys is not None:  # as far as the page's end at least, or every device of the list
        keys = first_keys[start : start + per_page]
    elif total is None or start <= total // 2:
        keys = list(devices.values_list("pk", flat=True)[start : start + per_page])
    else:
        count = min(per_page, total - start)
        skip = total - start - count
        keys = list(devices.reverse().values_list("pk", flat=True)[skip : skip + count])[::-1]
    # The page's keys first, then its rows: in the default order a search or filter finds the keys in the order's
    # index alone (it carries the searched columns), where reading whole rows would fetch every row it passes over.
    read = with_annotations(devices.order_by().filter(pk__in=keys), fields)
    rows = {row[0]: row for row in read.values_list(*fields)}
    return [rows[pk] for pk in keys if pk in rows]


def offered_actions(tab: str) -> list:
    """The device actions that can work on some device of the tab (Restore only where excluded devices are)."""
    statuses = set(TAB_STATUSES[tab])
    return [action for action in ACTIONS.values() if statuses & set(action.statuses)]


def blade_context(request: HttpRequest, state: TabState) -> dict:
    """Everything the blade shows for a tab state; InvalidQuery for a value that is not a choice."""
    devices = device_list(state.tab, state.params)
    page, per_page = paging(state.params)
    columns = saved_columns(request.user, state.tab)
    counts = summary(tab_counts())
    first_keys = None
    if state.narrowed():
        # Counted as far as this page and the most an action takes: past that the pager says "more than", and
        # "select all matching" (at most MAX_DEVICES) still names an exact number whenever it is offered.
        limit = max(MAX_DEVICES, page * per_page)
        if limit == MAX_DEVICES and order_carries_filters(state.sort):
            first_keys, total, exact = keys_up_to(devices, limit)
        else:
            total, exact = count_up_to(devices, limit, searched=bool(search_text(state.params)))
    else:
        total, exact = counts["tabs"][state.tab], True
    pages = max(1, -(-total // per_page))
    page = min(page, pages)  # past the end shows the last page, never an empty one numbered beyond it
    start = (page - 1) * per_page
    keys = [c.key for c in columns]
    # The device name opens the details; without that column, the first one does.
    link_column = "device_name" if "device_name" in keys else keys[0]
    here = state.url()
    can = {cap: has_capability(request.user, cap) for cap in Capability.values}
    writer = RowWriter(
        columns,
        link_column,
        f"{here}{'&' if '?' in here else '?'}device=",  # state.with_device, built once for every row
        selectable=can[Capability.DEVICE_ACTIONS],
    )
    rows = page_rows(devices, start, per_page, total if exact else None, first_keys, writer.fields)
    sort = state.sort
    headers = []
    for column in columns:
        current = sort.removeprefix("-") == column.key
        descending = current and sort.startswith("-")
        headers.append(
            Header(
                column,
                ("descending" if descending else "ascending") if current else "",
                state.url(sort=column.key if descending or not current else f"-{column.key}"),
            )
        )
    chosen = active_filters(state.tab, state.params)
    active_run, last_run = last_runs()
    link, external = registration_group_link()
    return {
        "state": state,
        "tab": state.tab,
        "tabs": [(tab, Tab(tab).label, counts["tabs"][tab], state.for_tab(tab)) for tab in TAB_STATUSES],
        "summary": counts,
        "columns": columns,
        "headers": headers,
        "rows": rows,
        "table_body": writer.table_body(rows),
        "page": page,
        "pages": pages,
        "per_page": per_page,
        "page_sizes": PAGE_SIZES,
        "total": total,
        "total_exact": exact,
        "first_row": start + 1 if rows else 0,
        "last_row": start + len(rows),
        "prev_url": state.url(page=page - 1 if page > 2 else None) if page > 1 else "",
        "next_url": state.url(page=page + 1) if page < pages or not exact else "",
        "filters": [(f, chosen.get(f.param, "")) for f in filters_for(state.tab)],
        "narrowed": state.narrowed(),
        "clear_url": state.url(q=None, **{f.param: None for f in filters_for(state.tab)}),
        "export_url": state.export_url(",".join(keys)),
        "export_all_url": state.export_url("all"),
        "active_run": active_run,
        "last_run": last_run,
        "group_link": link,
        "group_link_external": external,
        "empty_state": state.tab == Tab.READY and counts["registered"] == 0,
        "show_group_link": state.tab in (Tab.READY, Tab.NOT_REGISTERED),
        "can": can,
        "actions": offered_actions(state.tab),
        "matching": state.matching(),
        "max_selection": MAX_DEVICES,
        "rings": Ring.choices,
        "no_ring": NO_RING,
    }


def blade_template(request: HttpRequest) -> str:
    """The whole page on first load and for htmx's history restore (Back/Forward); else the part the request swaps."""
    htmx = request.htmx
    if not htmx or htmx.boosted or htmx.history_restore_request:
        return "devices/blade.html"
    return "devices/blade.html#results-swap" if htmx.target == "results" else "devices/blade.html#blade-swap"


@never_cache
@require_GET
@capability_required(Capability.REFRESH_DEVICE_LIST)
@vary_on_headers("HX-Request", "HX-History-Restore-Request", "HX-Target")
def tab_view(request: HttpRequest, tab: str) -> HttpResponse:
    state = TabState.from_request(request, tab_or_404(tab))
    try:
        context = blade_context(request, state)
    except InvalidQuery as exc:
        return bad_request(request, str(exc))
    template = blade_template(request)
    if template == "devices/blade.html":
        device = open_device(request.GET.get("device", ""))
        if device is not None:
            context.update(details_context(request, device), flyin_open=True)
    return render(request, template, context)


def open_device(value: str) -> Device | None:
    """The device a blade URL opens in the fly-in (?device=pk); a malformed or deleted one opens nothing."""
    if not value.isdecimal() or len(value) > 18:
        return None
    return Device.objects.with_last_discovered().filter(pk=int(value)).first()


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return redirect("devices:tab", tab=Tab.READY)
