"""Export to CSV: every row of a tab that matches its search and filters, in its sort order, streamed."""

from __future__ import annotations

from collections.abc import Iterator

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.access import capability_required
from accounts.audit import record_event
from accounts.models import AuditEvent
from accounts.roles import Capability
from autopatch_portal.csvfile import csv_download
from devices.columns import COLUMNS, Column
from devices.export import Progress, csv_rows
from devices.models import Tab
from devices.queries import InvalidQuery, device_list

from .common import TabState, bad_request, parse_column_keys, saved_columns, tab_or_404


def audited(request: HttpRequest, tab: str, columns: list[Column], params: dict, devices) -> Iterator[str]:
    """Stream the CSV, then record who exported what and how many rows went out (also when cut short)."""
    progress, complete = Progress(), False
    try:
        yield from csv_rows(devices, columns, progress)
        complete = True
    finally:
        record_event(
            request.user,
            AuditEvent.Action.EXPORT,
            target=Tab(tab).label,
            request=request,
            result=f"{progress.rows} rows" + ("" if complete else " (interrupted)"),
            columns=[c.title for c in columns],
            params=params,
        )


@never_cache
@require_GET
@capability_required(Capability.EXPORT_DEVICES)
def export_csv(request: HttpRequest, tab: str) -> HttpResponse:
    state = TabState.from_request(request, tab_or_404(tab))
    raw = request.GET.getlist("columns")
    try:
        if raw == ["all"]:
            columns = list(COLUMNS)
        elif raw:
            columns = parse_column_keys(raw)
        else:
            columns = saved_columns(request.user, tab)
        devices = device_list(tab, state.params)
    except (InvalidQuery, ValueError) as exc:
        return bad_request(request, str(exc))
    lines = audited(request, tab, columns, state.params, devices)
    return csv_download(lines, f"devices-{tab}")
