"""Deploy the readiness script to Intune Remediations (what the administration page's button does)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.audit import record_event
from accounts.models import AuditEvent
from autopatch_portal.tenant.connection import connect
from autopatch_portal.tenant.graph import GraphError
from devices.remediation.deploy import deploy_readiness_script


class Command(BaseCommand):
    help = "Create and assign the readiness script in Intune, or update it to the shipped version."

    def handle(self, *args, **options) -> None:
        try:
            deployment = deploy_readiness_script(connect(), "manage.py deploy_readiness_script")
        except GraphError as exc:
            raise CommandError(f"The readiness script was not deployed: {exc}") from exc
        if deployment.action != "unchanged":
            record_event(
                "manage.py deploy_readiness_script",
                AuditEvent.Action.READINESS_SCRIPT,
                target=deployment.script.intune_id,
                result=deployment.action,
                version=deployment.script.version,
            )
        self.stdout.write(
            f"Readiness script {deployment.action}: Intune ID {deployment.script.intune_id}, "
            f"version {deployment.script.version}"
        )
