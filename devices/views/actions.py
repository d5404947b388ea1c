"""Device actions: confirm (GET) then apply (POST) Assign ring, Exclude device or Restore excluded device."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods
from django_htmx.http import trigger_client_event

from accounts.access import capability_required
from accounts.audit import record_event
from accounts.models import AuditEvent
from accounts.roles import Capability
from devices import actions
from devices.models import Ring

from .common import bad_request

LISTED = 25  # devices named in the confirmation; the rest are counted


@require_http_methods(["GET", "POST"])
@capability_required(Capability.DEVICE_ACTIONS)
def device_action(request: HttpRequest, action: str) -> HttpResponse:
    spec = actions.ACTIONS.get(action)
    if spec is None:
        raise Http404("No such device action.")
    data = request.POST if request.method == "POST" else request.GET
    try:
        devices = actions.selected_devices(data.getlist("ids"))
    except actions.ActionError as exc:
        return bad_request(request, str(exc))
    context = {"action": spec, "devices": devices[:LISTED], "more": max(0, len(devices) - LISTED),
               "ids": [d.pk for d in devices], "rings": Ring.choices}  # fmt: skip
    if request.method == "GET":
        return render(request, "devices/_action_confirm.html", context)
    actor = request.user.get_username()
    ring, run = data.get("ring", ""), None
    try:
        if action == "assign_ring":
            outcomes = actions.assign_ring(devices, ring)
        elif action == "exclude":
            outcomes = actions.exclude(devices, actor)
        else:
            outcomes, run, _ = actions.restore(devices, actor)
    except actions.ActionError as exc:
        return bad_request(request, str(exc))
    done = sum(1 for o in outcomes if o.done)
    record_event(request.user, AuditEvent.Action.DEVICE_ACTION, target=", ".join(d.azure_ad_device_id for d in devices),
                 result=f"{spec.title}: {done} of {len(outcomes)} done", action=action, ring=ring or None,
                 run=run.pk if run else None,
                 outcomes=[{"device": o.device.azure_ad_device_id, "done": o.done, "message": o.message}
                           for o in outcomes])  # fmt: skip
    response = render(request, "devices/_action_result.html", {**context, "outcomes": outcomes, "done": done, "run": run})
    trigger_client_event(response, "devicesChanged", {})
    return response
