"""Device actions: confirm (GET) then apply (POST) Assign ring, Exclude device or Restore excluded device."""

from __future__ import annotations

from django.core.exceptions import TooManyFieldsSent
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from django_htmx.http import trigger_client_event

from accounts.access import capability_required
from accounts.roles import Capability
from devices import actions
from devices.models import Ring
from devices.queries import InvalidQuery, device_list

from .common import bad_request, tab_or_404

LISTED = 25  # devices named in the confirmation; the rest are counted
TOO_MANY = f"Select at most {actions.MAX_DEVICES} devices at a time."


def selected_ids(values: list[str]) -> list[str]:
    """Device IDs from the form: each `ids` field holds one ID or several joined by commas (the confirmation
    sends them as one field, so 1,000 devices and a ring stay within Django's limit on a form's fields)."""
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def matching_ids(value: str) -> list[str]:
    """Every device a tab's search and filters match (the "select all matching" of the blade), refused past the
    limit of one action rather than cut to it."""
    params = QueryDict(value)
    try:
        devices = device_list(tab_or_404(params.get("tab", "")), {key: params.get(key, "") for key in params})
    except (Http404, InvalidQuery) as exc:
        raise actions.ActionError(f"The selection is not valid: {exc}") from exc
    pks = list(devices.values_list("pk", flat=True)[: actions.MAX_DEVICES + 1])
    if len(pks) > actions.MAX_DEVICES:
        raise actions.ActionError(f"More than {actions.MAX_DEVICES} devices match: {TOO_MANY}")
    return [str(pk) for pk in pks]


@never_cache
@require_http_methods(["GET", "POST"])
@capability_required(Capability.DEVICE_ACTIONS)
def device_action(request: HttpRequest, action: str) -> HttpResponse:
    spec = actions.ACTIONS.get(action)
    if spec is None:
        raise Http404("No such device action.")
    try:
        data = request.POST if request.method == "POST" else request.GET
        ids = selected_ids(data.getlist("ids"))
        if data.get("matching"):
            ids = matching_ids(data["matching"])
        devices = actions.selected_devices(ids)
    except TooManyFieldsSent:
        return bad_request(request, TOO_MANY)
    except actions.ActionError as exc:
        return bad_request(request, str(exc))
    context = {
        "action": spec,
        "devices": devices[:LISTED],
        "more": max(0, len(devices) - LISTED),
        "ids": ",".join(str(d.pk) for d in devices),
        "count": len(devices),
        "rings": Ring.choices,
    }
    if request.method == "GET":
        return render(request, "devices/_action_confirm.html", context)
    ring = data.get("ring", "")
    try:
        outcomes, run = actions.perform(request.user, action, devices, ring, request)
    except actions.ActionError as exc:
        return bad_request(request, str(exc))
    done = sum(1 for o in outcomes if o.done)
    response = render(
        request, "devices/_action_result.html", {**context, "outcomes": outcomes, "done": done, "run": run}
    )
    trigger_client_event(response, "devicesChanged", {})
    return response
