"""Device details (the fly-in) and the registration group's members for a simulated tenant."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from accounts.access import capability_required, has_capability
from accounts.roles import Capability
from autopatch_portal.tenant import directory
from autopatch_portal.tenant.connection import connect
from autopatch_portal.tenant.graph import GraphError
from devices.actions import ACTIONS
from devices.columns import COLUMNS, text
from devices.models import NOT_REPORTED, Device, report_freshness

from .common import ENTRA_GROUP_URL, bad_request

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
    checks = {"prerequisite": [], "readiness": []}
    for check in device.checks or []:
        checks.setdefault(check.get("kind") or "prerequisite", []).append(check)
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
    device = get_object_or_404(Device, pk=pk)
    template = "devices/_flyin.html" if request.htmx else "devices/device_page.html"
    return render(request, template, details_context(request, device))


@never_cache
@require_GET
@capability_required(Capability.REFRESH_DEVICE_LIST)
def registration_group(request: HttpRequest) -> HttpResponse:
    """A simulated tenant's registration group: its members and nested groups, read through Graph page by page."""
    try:
        tenant = connect()
        group_id = directory.registration_group_id(tenant.graph, tenant.registration_group_id)
    except GraphError as exc:
        return bad_request(request, f"The registration group could not be read: {exc}", status=502)
    if tenant.simulated is None:
        return redirect(ENTRA_GROUP_URL.format(group_id))
    next_link = request.GET.get("next", "")
    try:
        group = directory.group(tenant.graph, group_id)
        page = directory.members_page(tenant.graph, group_id, next_link, MEMBERS_PAGE)
    except ValueError as exc:
        return bad_request(request, str(exc))
    except GraphError as exc:
        return bad_request(request, f"The registration group could not be read: {exc}", status=502)
    members = page.get("value") or []
    kinds = {
        "#microsoft.graph.device": "Device",
        "#microsoft.graph.group": "Group",
        "#microsoft.graph.user": "User",
    }
    rows = [
        {
            "name": m.get("displayName") or m.get("id"),
            "id": m.get("id"),
            "device_id": m.get("deviceId") or "",
            "kind": kinds.get(
                m.get("@odata.type") or "", (m.get("@odata.type") or "").rsplit(".", 1)[-1] or "Object"
            ),
        }
        for m in members
    ]
    nested = [r for r in rows if r["kind"] == "Group"]
    return render(
        request,
        "devices/registration_group.html",
        {
            "group": group,
            "group_name": group.get("displayName") or settings.AUTOPATCH_REGISTRATION_GROUP_NAME,
            "rows": rows,
            "nested": nested,
            "next": page.get("@odata.nextLink") or "",
            "first_page": not next_link,
        },
    )
