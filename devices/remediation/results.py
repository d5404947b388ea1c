"""Read the readiness script's results from Intune (its run states) into the portal's readiness reports.

Every discovery run reads the deployed script's run states through Graph, page by page, and hands each parsed
output to the one validating ingestion path (devices.readiness.ingest_reports). A run reads only the run states
updated since its last complete read (less AUTOPATCH_INTUNE_SYNC_MARGIN_MINUTES: a device reports a run when it next
syncs, after the run's time), and all of them every AUTOPATCH_INTUNE_FULL_READ_HOURS, as for managed devices.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings

from autopatch_portal.tenant import health_scripts
from autopatch_portal.tenant.connection import TenantConnection
from autopatch_portal.tenant.graph import GraphError

from ..models import DeltaLink
from ..readiness import IngestResult, ingest_reports
from .deploy import deployed
from .output import ScriptOutputError, report_from_run_state

RUN_STATES = "readiness-run-states"  # the DeltaLink row that says when run states were last read


@dataclass
class ResultsRead:
    read: int = 0  # run states read
    full: bool = False
    ingest: IngestResult = field(default_factory=IngestResult)
    rejected: list[str] = field(
        default_factory=list
    )  # outputs that are not the script's report, with the device
    error: str = ""  # the read stopped: why
    deployed: bool = True


def read_readiness_results(tenant: TenantConnection, now: datetime) -> ResultsRead:
    """Read the deployed readiness script's run states into readiness reports; nothing when none is deployed."""
    result = ResultsRead()
    script = deployed()
    if script is None:
        result.deployed = False
        return result
    link = DeltaLink.objects.filter(name=f"{RUN_STATES}:{script.intune_id}").first()
    every = timedelta(hours=settings.AUTOPATCH_INTUNE_FULL_READ_HOURS)
    since = None
    if link and link.read_at and link.full_read_at and now - link.full_read_at < every:
        since = link.read_at - timedelta(minutes=settings.AUTOPATCH_INTUNE_SYNC_MARGIN_MINUTES)
    result.full = since is None

    def reports() -> Iterator[dict]:
        pages = health_scripts.run_state_pages(
            tenant.graph, script.intune_id, since, settings.AUTOPATCH_INTUNE_PAGE_SIZE
        )
        for page in pages:
            for state in page:
                result.read += 1
                try:
                    yield report_from_run_state(state)
                except ScriptOutputError as exc:
                    result.rejected.append(str(exc))

    try:
        result.ingest = ingest_reports(reports(), keep_ids=False)
    except GraphError as exc:
        result.error = f"The readiness script's results could not be read: {exc}"
        if exc.status == 404:
            result.error += (
                " The script is no longer in Intune: deploy it again (Devices › Readiness script)."
            )
        return result
    DeltaLink.objects.filter(name__startswith=f"{RUN_STATES}:").exclude(
        name=f"{RUN_STATES}:{script.intune_id}"
    ).delete()
    DeltaLink.objects.update_or_create(
        name=f"{RUN_STATES}:{script.intune_id}",
        defaults={"read_at": now, **({"full_read_at": now} if result.full else {})},
    )
    return result
