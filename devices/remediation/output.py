"""Parse what the readiness script printed (a run state's preRemediationDetectionScriptOutput) into a report.

The script prints one compact JSON object of at most 2,048 characters (README, "The readiness script"):
{"schemaVersion": 1, "generatedDateTime": "2026-11-29T08:00:00Z",
 "checks": [{"name": "Internet connectivity", "result": "passed", "detail": ""}, ...]}
A run state names its device through the expanded managedDevice (azureADDeviceId) and its time through
lastStateUpdateDateTime (api-reference/beta/resources/intune-devices-devicehealthscriptdevicestate.md), which is
the report's time. Anything else is refused with the reason, so the run can name it and go on.
"""

from __future__ import annotations

from typing import Any

import orjson

from autopatch_portal.tenant.reports import READINESS_CHECK_NAMES, REPORT_SCHEMA_VERSION, SCRIPT_OUTPUT_LIMIT

from ..checks import parse_graph_time


def _time(value: Any) -> bool:
    """Whether a value is a date and time with its time zone, as Graph and the script write them."""
    moment = parse_graph_time(value) if isinstance(value, str) else None
    return moment is not None and moment.tzinfo is not None


class ScriptOutputError(ValueError):
    """The output is not the script's report; the message says why."""


def parse_script_output(output: Any) -> dict[str, Any]:
    """The report the script printed: {"generatedDateTime", "checks": [{"name", "result", "detail"}]}."""
    if not isinstance(output, str) or not output.strip():
        raise ScriptOutputError("the script printed nothing")
    if len(output) > SCRIPT_OUTPUT_LIMIT:
        raise ScriptOutputError(f"the output has {len(output)} characters, more than {SCRIPT_OUTPUT_LIMIT}")
    try:
        data = orjson.loads(
            output
        )  # 73,000 outputs in a first run at 100,000 devices: the stdlib's took 3x longer
    except ValueError:
        cut = len(output) >= SCRIPT_OUTPUT_LIMIT - 8 or output.lstrip().startswith("{")
        raise ScriptOutputError(
            "the output is cut short (Intune keeps 2,048 characters)" if cut else "the output is not JSON"
        ) from None
    if not isinstance(data, dict):
        raise ScriptOutputError("the output is not a JSON object")
    version = data.get("schemaVersion")
    if version != REPORT_SCHEMA_VERSION or isinstance(version, bool):
        raise ScriptOutputError(f"schemaVersion {version!r} is not {REPORT_SCHEMA_VERSION}")
    if not _time(data.get("generatedDateTime")):
        raise ScriptOutputError("generatedDateTime is not a date and time")
    checks = data.get("checks")
    if not isinstance(checks, list) or not checks:
        raise ScriptOutputError("checks must be a non-empty list")
    for check in checks:
        if not isinstance(check, dict):
            raise ScriptOutputError("each check is a JSON object")
        name, result, detail = check.get("name"), check.get("result"), check.get("detail")
        if name not in READINESS_CHECK_NAMES:
            raise ScriptOutputError(f"unknown readiness check {name!r}")
        if result not in ("passed", "failed"):
            raise ScriptOutputError(f"result of {name!r} must be 'passed' or 'failed', not {result!r}")
        if detail is not None and not isinstance(detail, str):
            raise ScriptOutputError(f"detail of {name!r} must be text")
    # The checks as printed: ingestion (devices.readiness.ingest_reports) keeps each one's name, result and detail,
    # as it does for a report posted to the API (73,000 reports in a first run at 100,000 devices).
    return {"generatedDateTime": data["generatedDateTime"], "checks": checks}


def report_from_run_state(state: Any) -> dict[str, Any]:
    """The readiness report a run state carries, keyed by the device's Entra device ID and timed by
    lastStateUpdateDateTime. ScriptOutputError names the device (or the run state) and the reason."""
    if not isinstance(state, dict):
        raise ScriptOutputError("a run state is not a JSON object")
    managed = state.get("managedDevice")
    device_id = managed.get("azureADDeviceId") if isinstance(managed, dict) else None
    if not isinstance(device_id, str) or not device_id:
        raise ScriptOutputError(f"run state {state.get('id')!r} names no azureADDeviceId")
    name = managed.get("deviceName") if isinstance(managed, dict) else None
    who = f"{device_id} ({name})" if isinstance(name, str) and name else device_id
    try:
        report = parse_script_output(state.get("preRemediationDetectionScriptOutput"))
    except ScriptOutputError as exc:
        raise ScriptOutputError(f"{who}: {exc}") from None
    if not _time(state.get("lastStateUpdateDateTime")):
        raise ScriptOutputError(f"{who}: lastStateUpdateDateTime is not a date and time")
    return {
        "azureADDeviceId": device_id,
        "generatedDateTime": state["lastStateUpdateDateTime"],
        "checks": report["checks"],
    }
