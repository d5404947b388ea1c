"""The readiness script's administration page: the script, its download, and its deployment to Intune."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from accounts.access import administrator_required, role_required
from accounts.audit import record_event
from accounts.models import AuditEvent
from accounts.roles import Role, role_of
from autopatch_portal.tenant.connection import connect
from autopatch_portal.tenant.graph import GraphError
from autopatch_portal.tenant.health_scripts import PERMISSION, PermissionMissing
from devices.remediation import script
from devices.remediation.deploy import deploy_readiness_script, deployed

HISTORY = 20


def page(request: HttpRequest, error: str = "", status: int = 200) -> HttpResponse:
    current = deployed()
    return render(
        request,
        "devices/readiness_script.html",
        {
            "script_text": script.script_text(),
            "version": script.script_version(),
            "file_name": script.SCRIPT_FILE_NAME,
            "deployed": current,
            "out_of_date": current is not None and current.version != script.script_version(),
            "can_deploy": role_of(request.user) == Role.ADMINISTRATOR,
            "permission": PERMISSION,
            "history": AuditEvent.objects.filter(action=AuditEvent.Action.READINESS_SCRIPT)[:HISTORY],
            "error": error,
        },
        status=status,
    )


@never_cache
@require_GET
@role_required
def readiness_script(request: HttpRequest) -> HttpResponse:
    return page(request)


@never_cache
@require_GET
@role_required
def download(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(script.script_text().encode("utf-8"), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{script.SCRIPT_FILE_NAME}"'
    return response


@require_POST
@administrator_required
def deploy(request: HttpRequest) -> HttpResponse:
    try:
        deployment = deploy_readiness_script(connect(), request.user.get_username())
    except GraphError as exc:
        record_event(
            request.user,
            AuditEvent.Action.READINESS_SCRIPT,
            target=script.DISPLAY_NAME,
            result=f"failed: {exc}"[:500],
            request=request,
            version=script.script_version(),
        )
        message = (
            f"Intune refused: the portal's app registration needs the application permission {PERMISSION} "
            "(with admin consent) to deploy the readiness script."
            if isinstance(exc, PermissionMissing)
            else f"Microsoft Graph refused: {exc}"
        )
        return page(request, error=message, status=502)
    if deployment.action == "unchanged":
        messages.info(
            request, "The readiness script is deployed in Intune, in the shipped version: nothing to do."
        )
        return redirect("devices:readiness_script")
    record_event(
        request.user,
        AuditEvent.Action.READINESS_SCRIPT,
        target=deployment.script.intune_id,
        result=deployment.action,
        request=request,
        version=deployment.script.version,
        group_id=deployment.script.group_id,
    )
    messages.success(
        request,
        f"The readiness script was {deployment.action} in Intune (version {deployment.script.version}).",
    )
    return redirect("devices:readiness_script")
