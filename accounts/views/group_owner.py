"""The seed's tip: Service Administrators can become owners of the registration group; recorded in the audit log."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.access import administrator_required
from accounts.audit import record_event
from accounts.models import AuditEvent, EntraIdentity
from autopatch_portal.tenant import directory
from autopatch_portal.tenant.connection import connect
from autopatch_portal.tenant.graph import GraphError

GROUP = "Windows Autopatch Device Registration"


def identity_of(user) -> EntraIdentity | None:
    return EntraIdentity.objects.filter(user=user).first()


@require_GET
@administrator_required
def registration_group_owner(request: HttpRequest) -> HttpResponse:
    return render(
        request, "accounts/group_owner.html", {"identity": identity_of(request.user), "group": GROUP}
    )


@require_POST
@administrator_required
def become_owner(request: HttpRequest) -> HttpResponse:
    identity = identity_of(request.user)
    if identity is None:
        return render(
            request,
            "accounts/group_owner.html",
            {
                "identity": None,
                "group": GROUP,
                "error": "Your account is a local account of the portal: it has no Entra ID user to make owner.",
            },
            status=400,
        )
    try:
        tenant = connect()
        group_id = directory.registration_group_id(tenant.graph, tenant.registration_group_id)
        added = directory.add_group_owner(tenant.graph, group_id, identity.object_id)
    except directory.RegistrationGroupError as exc:
        return render(
            request,
            "accounts/group_owner.html",
            {"identity": identity, "group": GROUP, "error": str(exc)},
            status=502,
        )
    except GraphError as exc:
        record_event(
            request.user,
            AuditEvent.Action.GROUP_OWNER,
            target=GROUP,
            result=f"failed: {exc}"[:500],
            request=request,
        )
        return render(
            request,
            "accounts/group_owner.html",
            {"identity": identity, "group": GROUP, "error": f"Microsoft Graph refused: {exc}"},
            status=502,
        )
    result, level = ("became owner", messages.SUCCESS) if added else ("already an owner", messages.INFO)
    record_event(
        request.user,
        AuditEvent.Action.GROUP_OWNER,
        target=GROUP,
        result=result,
        request=request,
        object_id=identity.object_id,
        group_id=group_id,
    )
    messages.add_message(
        request,
        level,
        f"You are an owner of {GROUP}."
        if result == "became owner"
        else f"You were already an owner of {GROUP}.",
    )
    return redirect("accounts:registration_group_owner")
