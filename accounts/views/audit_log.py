"""The audit log page (Service Administrators only): filter, page through and export; never edit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode

from django import forms
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.access import administrator_required
from accounts.audit import record_event
from accounts.models import AuditEvent
from autopatch_portal.csvfile import LineWriter, csv_download
from autopatch_portal.paging import requested_page

PAGE_SIZE = 50
FILTER_FIELDS = ("actor", "action", "result", "since", "until", "q")


class AuditFilter(forms.Form):
    actor = forms.CharField(required=False, max_length=256, label="Who")
    action = forms.ChoiceField(
        required=False, choices=[("", "Any action"), *AuditEvent.Action.choices], label="What"
    )
    result = forms.CharField(required=False, max_length=200, label="Result contains")
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))
    q = forms.CharField(required=False, max_length=200, label="Target contains")

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("“From” is after “To”.")
        return data

    def events(self) -> QuerySet[AuditEvent]:
        data = self.cleaned_data
        events = AuditEvent.objects.all()
        if data.get("actor"):
            events = events.filter(actor__icontains=data["actor"])
        if data.get("action"):
            events = events.filter(action=data["action"])
        if data.get("result"):
            events = events.filter(result__icontains=data["result"])
        if data.get("q"):
            events = events.filter(Q(target__icontains=data["q"]))
        if data.get("since"):
            events = events.filter(at__gte=day_start(data["since"]))
        if data.get("until") and data["until"] < date.max:  # the last day there is has no day after it
            events = events.filter(at__lt=day_start(data["until"] + timedelta(days=1)))
        return events


def day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def filter_form(request: HttpRequest) -> tuple[AuditFilter, HttpResponse | None]:
    form = AuditFilter(request.GET)
    if not form.is_valid():
        return form, render(request, "accounts/audit_log.html", {"form": form, "page": None}, status=400)
    return form, None


@never_cache
@require_GET
@administrator_required
def audit_log(request: HttpRequest) -> HttpResponse:
    form, refused = filter_form(request)
    if refused:
        return refused
    paginator = Paginator(form.events(), PAGE_SIZE)
    page_number = requested_page(request.GET.get("page"))
    if page_number is None or page_number > paginator.num_pages:
        return render(
            request,
            "accounts/audit_log.html",
            {"form": form, "page": None, "error": "There is no such page."},
            status=400,
        )
    page = paginator.page(page_number)
    query = urlencode({k: v for k in FILTER_FIELDS if (v := request.GET.get(k, ""))})
    return render(request, "accounts/audit_log.html", {"form": form, "page": page, "query": query})


def csv_rows(events: QuerySet[AuditEvent]) -> Iterator[str]:
    writer = LineWriter()
    yield writer.header(["When (UTC)", "Who", "What", "Target", "Result", "Source IP", "Details"])
    for event in events.iterator(chunk_size=2000):
        # Details as JSON, which a script or a spreadsheet can take apart (not Python's repr).
        yield writer.row(
            [
                event.at.strftime("%Y-%m-%d %H:%M:%S"),
                event.actor,
                event.get_action_display(),
                event.target,
                event.result,
                event.source_ip or "",
                json.dumps(event.details, sort_keys=True, ensure_ascii=False),
            ]
        )


@never_cache
@require_GET
@administrator_required
def audit_export(request: HttpRequest) -> HttpResponse:
    form, refused = filter_form(request)
    if refused:
        return refused
    events = form.events()
    record_event(
        request.user,
        AuditEvent.Action.EXPORT,
        target="audit log",
        result=f"{events.count()} events",
        request=request,
        filters={k: v for k, v in request.GET.items() if k in FILTER_FIELDS and v},
    )
    return csv_download(csv_rows(events), "audit-log")
