"""The column chooser: each user's columns and their order, per tab, saved in the database."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods
from django_htmx.http import HttpResponseClientRefresh

from accounts.access import capability_required
from accounts.audit import record_event
from accounts.models import AuditEvent
from accounts.roles import Capability
from devices.columns import COLUMNS, DEFAULT_COLUMNS
from devices.models import ColumnChoice, Tab

from .common import bad_request, parse_column_keys, saved_columns, tab_or_404


@require_http_methods(["GET", "POST"])
@capability_required(Capability.MODIFY_COLUMNS)
def column_chooser(request: HttpRequest, tab: str) -> HttpResponse:
    tab_or_404(tab)
    if request.method == "POST":
        if request.POST.get("reset"):
            ColumnChoice.objects.filter(user=request.user, tab=tab).delete()
            keys = list(DEFAULT_COLUMNS)
        else:
            try:
                keys = [c.key for c in parse_column_keys(request.POST.getlist("columns"))]
            except ValueError as exc:
                return bad_request(request, str(exc))
            ColumnChoice.objects.update_or_create(user=request.user, tab=tab, defaults={"columns": keys})
        record_event(request.user, AuditEvent.Action.COLUMNS, target=tab, result=", ".join(keys), columns=keys)
        if request.htmx:
            return HttpResponseClientRefresh()
        return redirect("devices:tab", tab=tab)
    chosen = saved_columns(request.user, tab)
    chosen_keys = [c.key for c in chosen]
    others = [c for c in COLUMNS if c.key not in chosen_keys]
    template = "devices/_columns.html" if request.htmx else "devices/columns_page.html"
    return render(request, template, {"tab": tab, "tab_label": Tab(tab).label, "chosen": chosen, "others": others})
