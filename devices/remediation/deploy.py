"""Deploy the shipped readiness script to Intune Remediations, or bring the deployed one up to its version.

One function for the administration page, `manage.py deploy_readiness_script` and the tests. A deployment leaves
nothing half-made: a script that could not be assigned is deleted again, and Intune's refusal for want of
DeviceManagementConfiguration.ReadWrite.All comes back as PermissionMissing, whose message names it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone

from autopatch_portal.tenant import directory, health_scripts
from autopatch_portal.tenant.connection import TenantConnection
from autopatch_portal.tenant.graph import GraphError

from ..models import ReadinessScript
from . import script

log = logging.getLogger(__name__)


@dataclass
class Deployment:
    action: str  # "created", "updated" or "unchanged"
    script: ReadinessScript


def shipped_content() -> health_scripts.ScriptContent:
    return health_scripts.ScriptContent(
        text=script.script_text(),
        version=script.script_version(),
        display_name=script.DISPLAY_NAME,
        publisher=script.PUBLISHER,
        description=script.DESCRIPTION,
    )


def deployed() -> ReadinessScript | None:
    return ReadinessScript.objects.first()


def deploy_readiness_script(tenant: TenantConnection, actor: str) -> Deployment:
    """Create and assign the script, or PATCH the deployed one when the shipped script changed; a deployed script
    that someone deleted in Intune is created again."""
    content = shipped_content()
    current = deployed()
    if current is not None and current.version == content.version:
        if health_scripts.script_exists(tenant.graph, current.intune_id):
            return Deployment("unchanged", current)
        log.info("The deployed readiness script %s is gone from Intune: creating it again", current.intune_id)
    elif current is not None:
        try:
            health_scripts.update_script(tenant.graph, current.intune_id, content)
        except GraphError as exc:
            if exc.status != 404:
                raise
            log.info(
                "The deployed readiness script %s is gone from Intune: creating it again", current.intune_id
            )
        else:
            ReadinessScript.objects.filter(pk=current.pk, version=current.version).update(
                version=content.version, updated_at=timezone.now(), updated_by=actor
            )
            current.refresh_from_db()
            return Deployment("updated", current)
    group_id = directory.registration_group_id(tenant.graph, tenant.registration_group_id)
    script_id = health_scripts.create_script(tenant.graph, content)
    try:
        health_scripts.assign_script(tenant.graph, script_id, group_id)
    except GraphError:
        remove(tenant, script_id)
        raise
    now = timezone.now()
    try:
        with transaction.atomic():
            if current is not None:
                # The row names a script Intune no longer holds: it now names the new one.
                ReadinessScript.objects.filter(pk=current.pk).delete()
            row = ReadinessScript.objects.create(
                intune_id=script_id,
                version=content.version,
                group_id=group_id,
                deployed_at=now,
                deployed_by=actor,
            )
    except IntegrityError:
        remove(tenant, script_id)  # another deployment finished first: its script stays, this one goes
        winner = deployed()
        assert winner is not None
        return Deployment("unchanged", winner)
    return Deployment("created", row)


def remove(tenant: TenantConnection, script_id: str) -> None:
    """Delete a script this deployment created and could not finish; a failure here is logged, not raised over
    the error that made the deployment stop."""
    try:
        health_scripts.delete_script(tenant.graph, script_id)
    except GraphError as exc:
        log.warning(
            "The readiness script %s could not be deleted after a failed deployment: %s", script_id, exc
        )
