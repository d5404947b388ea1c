"""The seed's tip: Service Administrators can become owners of the registration group; recorded in the audit log."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.access import administrator_required
from accounts.audit import record_event
from accounts.models import AuditEvent, EntraIdentity
from devices import connector
from devices.discovery import DiscoveryAborted, registration_group_id
from devices.graph import GraphError

GROUP = "Windows Autopatch Device Registration"


def identity_of(user) -> EntraIdentity | None:
    return EntraIdentity.objects.filter(user=user).first()


@require_GET
@administrator_required
def registration_group_owner(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/group_owner.html", {"identity": identity_of(request.user), "group": GROUP})


@require_POST
@administrator_required
def become_owner(request: HttpRequest) -> HttpResponse:
    identity = identity_of(request.user)
    if identity is None:
        return render(request, "accounts/group_owner.html", {"identity": None, "group": GROUP,
                      "error": "Your account is a local account of the portal: it has no Entra ID user to make owner."},
                      status=400)  # fmt: skip
    try:
        tenant = connector.connect()
        group_id = registration_group_id(tenant)
        tenant.graph.post(f"v1.0/groups/{group_id}/owners/$ref",
                          {"@odata.id": f"https://graph.microsoft.com/v1.0/directoryObjects/{identity.object_id}"})  # fmt: skip
    except GraphError as exc:
        if exc.status == 400 and "already exist" in str(exc):
            result, level = "already an owner", messages.INFO
        else:
            record_event(request.user, AuditEvent.Action.GROUP_OWNER, target=GROUP, result=f"failed: {exc}"[:500],
                         request=request)  # fmt: skip
            return render(request, "accounts/group_owner.html", {"identity": identity, "group": GROUP,
                          "error": f"Microsoft Graph refused: {exc}"}, status=502)  # fmt: skip
    except DiscoveryAborted as exc:
        return render(request, "accounts/group_owner.html", {"identity": identity, "group": GROUP,
                      "error": str(exc)}, status=502)  # fmt: skip
    else:
        result, level = "became owner", messages.SUCCESS
    record_event(request.user, AuditEvent.Action.GROUP_OWNER, target=GROUP, result=result, request=request,
                 object_id=identity.object_id, group_id=group_id)  # fmt: skip
    messages.add_message(request, level, f"You are an owner of {GROUP}." if result == "became owner"
                         else f"You were already an owner of {GROUP}.")  # fmt: skip
    return redirect("accounts:registration_group_owner")
