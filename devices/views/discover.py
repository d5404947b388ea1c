"""Discover devices: start the discovery task (the hourly one) and follow its run's row until it ends."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from accounts.access import capability_required
from accounts.roles import Capability
from devices.models import DiscoveryRun
from devices.runs import request_discovery


def run_status(request: HttpRequest, run: DiscoveryRun, message: str = "") -> HttpResponse:
    response = render(request, "devices/_discover_status.html", {"run": run, "message": message})
    if not run.is_active:
        # The run ended: the blade reloads its counts and table.
        trigger_client_event(response, "devicesChanged", {})
    return response


@never_cache
@require_POST
@capability_required(Capability.DISCOVER_DEVICES)
def discover(request: HttpRequest) -> HttpResponse:
    run, started = request_discovery(request.user, DiscoveryRun.Trigger.MANUAL, request)
    run = run.reread()
    if started:
        message = f"Discovery run #{run.pk} started."
    else:
        by = f" by {run.requested_by}" if run.requested_by else ""
        message = (
            f"A discovery run (#{run.pk}, {run.get_trigger_display().lower()}{by}) is already under way; "
            "its progress is shown below."
        )
    if not request.htmx:
        return redirect("devices:tab", tab="ready")
    response = render(request, "devices/_discover_status.html", {"run": run, "message": message})
    return response


@never_cache
@require_GET
@capability_required(Capability.REFRESH_DEVICE_LIST)
def discovery_run(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(DiscoveryRun.objects.with_progress(), pk=pk)
    return run_status(request, run)
