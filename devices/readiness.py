"""Ingest device-side readiness reports: kept per device, newest wins, even before registration."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from django.utils import timezone

from .bulk import bulk_write
from .checks import READINESS_CHECKS, parse_graph_time
from .models import ReadinessReport

CHUNK = 2000


@dataclass
class IngestResult:
    stored: int = 0
    unchanged: int = 0
    rejected: list[str] = field(default_factory=list)


def validate_report(report: Any) -> str | None:
    """Why a report cannot be taken, or None when it can."""
    if not isinstance(report, dict):
        return "a report is a JSON object"
    device_id = report.get("azureADDeviceId")
    if not isinstance(device_id, str) or not device_id:
        return "azureADDeviceId is missing"
    if parse_graph_time(report.get("generatedDateTime")) is None:
        return f"{device_id}: generatedDateTime is not a date and time"
    checks = report.get("checks")
    if not isinstance(checks, list) or not checks:
        return f"{device_id}: checks must be a non-empty list"
    for check in checks:
        if not isinstance(check, dict) or check.get("name") not in READINESS_CHECKS:
            return f"{device_id}: unknown readiness check {check.get('name') if isinstance(check, dict) else check!r}"
        if check.get("result") not in ("passed", "failed"):
            return f"{device_id}: result of {check['name']!r} must be 'passed' or 'failed'"
    return None


def ingest_reports(reports: Iterable[Any]) -> IngestResult:
    """Store each valid report that is newer than the one kept; a bad report is rejected, not the batch.

    Reports the portal already holds (the same device and time) are only counted: an hourly run over an
    unchanged tenant builds nothing."""
    result = IngestResult()
    iterator = iter(reports)
    while chunk := list(islice(iterator, CHUNK)):
        newest: dict[str, tuple[Any, dict]] = {}
        for report in chunk:
            problem = validate_report(report)
            if problem:
                result.rejected.append(problem)
                continue
            generated = parse_graph_time(report["generatedDateTime"])
            kept = newest.get(report["azureADDeviceId"])
            if kept is None or kept[0] < generated:
                newest[report["azureADDeviceId"]] = (generated, report)
        known = dict(
            ReadinessReport.objects.filter(azure_ad_device_id__in=newest).values_list(
                "azure_ad_device_id", "generated_at"
            )
        )
        now = timezone.now()
        newer = [
            ReadinessReport(
                azure_ad_device_id=device_id,
                generated_at=generated,
                received_at=now,
                checks=[
                    {"name": c["name"], "result": c["result"], "detail": str(c.get("detail") or "")}
                    for c in report["checks"]
                ],
            )
            for device_id, (generated, report) in newest.items()
            if device_id not in known or known[device_id] < generated
        ]
        result.unchanged += len(newest) - len(newer)
        bulk_write(
            newer, unique_field="azure_ad_device_id", update_fields=["generated_at", "checks", "received_at"]
        )
        result.stored += len(newer)
    return result
