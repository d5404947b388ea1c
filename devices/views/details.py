"""Device details (the fly-in)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.access import capability_required, has_capability
from accounts.roles import Capability
from devices.actions import ACTIONS
from devices.columns import COLUMNS, text
from devices.lifecycle import replacement_of
from devices.models import NOT_REPORTED, Device, report_freshness

HISTORY = 50
MEMBERS_PAGE = 100


def details_context(request: HttpRequest, device: Device) -> dict:
    """What the fly-in and the device page show: every field, the checks, the history, and the actions the
    admin can take on this device from the fly-in."""
    fields = [(c.title, text(c.value(device))) for c in COLUMNS]
    fields += [
        ("Operating system", device.operating_system),
        ("Entra object ID", device.entra_object_id),
        ("In the registration group", "Yes" if device.in_registration_group else "No"),
        ("First discovered", text(device.first_discovered_at)),
    ]
    replacement = replacement_of(device)
    if replacement is not None:
        fields.append(("Possible replacement of", f"{replacement.replaced} (same {replacement.matched_on})"))
    checks = {"prerequisite": [], "readiness": []}
    for check in device.check_details:
        checks.setdefault(check["kind"], []).append(check)
    offered = [a for a in ACTIONS.values() if device.readiness_status in a.statuses]
    return {
        "device": device,
        "fields": fields,
        "prerequisites": checks["prerequisite"],
        "readiness": checks["readiness"],
        "history": device.status_changes.all()[:HISTORY],
        "report_time": text(device.report_generated_at),
        "report_freshness": report_freshness(device.report_generated_at),
        "not_reported": NOT_REPORTED,
        "device_actions": offered if has_capability(request.user, Capability.DEVICE_ACTIONS) else [],
    }


@never_cache
@require_GET
@capability_required(Capability.REFRESH_DEVICE_LIST)
def device_details(request: HttpRequest, pk: int) -> HttpResponse:
    device = get_object_or_404(Device.objects.with_last_discovered(), pk=pk)
    template = "devices/_flyin.html" if request.htmx else "devices/device_page.html"
    return render(request, template, details_context(request, device))
