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
    """Store each valid report that is newer than the one kept; a bad report is rejected, not the batch."""
    result = IngestResult()
    iterator = iter(reports)
    while chunk := list(islice(iterator, CHUNK)):
        valid: dict[str, ReadinessReport] = {}
        for report in chunk:
            problem = validate_report(report)
            if problem:
                result.rejected.append(problem)
                continue
            generated = parse_graph_time(report["generatedDateTime"])
            kept = valid.get(report["azureADDeviceId"])
            if kept is None or kept.generated_at < generated:
                valid[report["azureADDeviceId"]] = ReadinessReport(
                    azure_ad_device_id=report["azureADDeviceId"], generated_at=generated,
                    checks=[{"name": c["name"], "result": c["result"], "detail": str(c.get("detail") or "")}
                            for c in report["checks"]],
                    received_at=timezone.now(),
                )  # fmt: skip
        known = dict(
            ReadinessReport.objects.filter(azure_ad_device_id__in=valid).values_list("azure_ad_device_id", "generated_at")
        )
        newer = [r for key, r in valid.items() if key not in known or known[key] < r.generated_at]
        result.unchanged += len(valid) - len(newer)
        bulk_write(newer, unique_field="azure_ad_device_id", update_fields=["generated_at", "checks", "received_at"])
        result.stored += len(newer)
    return result
