"""The column chooser: each user's columns and their order, per tab, saved in the database."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseClientRefresh

from accounts.access import capability_required
from accounts.audit import record_event
from accounts.models import AuditEvent
from accounts.roles import Capability
from devices.columns import COLUMNS, COLUMNS_BY_KEY, DEFAULT_COLUMNS, Column
from devices.models import ColumnChoice, Tab

from .common import parse_column_keys, saved_columns, tab_or_404


def chooser(
    request: HttpRequest,
    tab: str,
    chosen: list[Column],
    order: list[str] | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    """The chooser with `chosen` ticked, listed in `order` (as the admin left them), else chosen first."""
    chosen_keys = {c.key for c in chosen}
    keys = [key for key in order or [] if key in COLUMNS_BY_KEY] or [c.key for c in chosen]
    keys = list(dict.fromkeys([*keys, *(c.key for c in COLUMNS)]))
    template = "devices/_columns.html" if request.htmx else "devices/columns_page.html"
    return render(
        request,
        template,
        {
            "tab": tab,
            "tab_label": Tab(tab).label,
            "error": error,
            "items": [(COLUMNS_BY_KEY[key], key in chosen_keys) for key in keys],
        },
        status=status,
    )


@never_cache
@require_http_methods(["GET", "POST"])
@capability_required(Capability.MODIFY_COLUMNS)
def column_chooser(request: HttpRequest, tab: str) -> HttpResponse:
    tab_or_404(tab)
    if request.method == "GET":
        return chooser(request, tab, saved_columns(request.user, tab))
    if request.POST.get("reset"):
        ColumnChoice.objects.filter(user=request.user, tab=tab).delete()
        columns = [COLUMNS_BY_KEY[key] for key in DEFAULT_COLUMNS]
    else:
        try:
            columns = parse_column_keys(request.POST.getlist("columns"))
        except ValueError as exc:
            # The chooser comes back as the admin left it, with the reason and its buttons.
            ticked = [COLUMNS_BY_KEY[k] for k in request.POST.getlist("columns") if k in COLUMNS_BY_KEY]
            return chooser(request, tab, ticked, request.POST.getlist("order"), str(exc), status=400)
        ColumnChoice.objects.update_or_create(
            user=request.user, tab=tab, defaults={"columns": [c.key for c in columns]}
        )
    record_event(
        request.user,
        AuditEvent.Action.COLUMNS,
        target=Tab(tab).label,
        request=request,
        result=", ".join(c.title for c in columns),
        columns=[c.key for c in columns],
    )
    if request.htmx:
        return HttpResponseClientRefresh()
    return redirect("devices:tab", tab=tab)
