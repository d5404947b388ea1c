"""Intune Remediations (device health scripts): deploy the portal's readiness script and read its run states.

Routes and properties from Microsoft's Graph reference (microsoftgraph/microsoft-graph-docs-contrib), all beta:
- create: api-reference/beta/api/intune-devices-devicehealthscript-create.md (`POST
  /deviceManagement/deviceHealthScripts`, 201 with the script; runAsAccount `system`, runAs32Bit, the script
  content as base64 `detectionScriptContent`)
- assign: api-reference/beta/api/intune-devices-devicehealthscript-assign.md (`POST .../{id}/assign` with
  `deviceHealthScriptAssignments`, 204), resources/intune-devices-devicehealthscriptassignment.md (target,
  runRemediationScript, runSchedule) and resources/intune-devices-devicehealthscriptdailyschedule.md (interval,
  time, useUtc)
- update: api-reference/beta/api/intune-devices-devicehealthscript-update.md (`PATCH .../{id}`, 200)
- delete: api-reference/beta/api/intune-devices-devicehealthscript-delete.md (`DELETE .../{id}`, 204)
- run states: api-reference/beta/api/intune-devices-devicehealthscriptdevicestate-list.md (`GET
  .../{id}/deviceRunStates`) and resources/intune-devices-devicehealthscriptdevicestate.md
  (preRemediationDetectionScriptOutput, lastStateUpdateDateTime, detectionState, the managedDevice relationship).
  Each of these pages names DeviceManagementConfiguration.ReadWrite.All for writes (Read.All suffices to read).
  The list page documents no OData query options: a `$filter` on lastStateUpdateDateTime is not promised, so a
  refused filter (400) is answered by reading every run state (see run_state_pages).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from .graph import GraphClient, GraphError

SCRIPTS = "/beta/deviceManagement/deviceHealthScripts"
PERMISSION = "DeviceManagementConfiguration.ReadWrite.All"
# What a run state needs: the output, its time, and the device it ran on (expanded, so no read per device).
RUN_STATE_SELECT = "id,detectionState,lastStateUpdateDateTime,preRemediationDetectionScriptOutput"
RUN_STATE_EXPAND = "managedDevice($select=azureADDeviceId,deviceName)"
DAILY_AT = "09:00:00"  # local time on the device: a daily run during the working day, when devices are on


class PermissionMissing(GraphError):
    """Graph refused the write (403): the app registration lacks DeviceManagementConfiguration.ReadWrite.All."""


@dataclass(frozen=True)
class ScriptContent:
    """What Intune holds of the script: its text and the portal's names for it."""

    text: str
    version: str
    display_name: str
    publisher: str
    description: str


def script_body(content: ScriptContent) -> dict:
    """A detection-only script run as SYSTEM in 64-bit PowerShell, its content base64 (Binary in the reference)."""
    return {
        "@odata.type": "#microsoft.graph.deviceHealthScript",
        "displayName": content.display_name,
        "description": content.description,
        "publisher": content.publisher,
        "version": content.version,
        "detectionScriptContent": base64.b64encode(content.text.encode("utf-8")).decode("ascii"),
        "runAsAccount": "system",
        "runAs32Bit": False,
        "enforceSignatureCheck": False,
    }


def _permission(exc: GraphError, doing: str) -> GraphError:
    if exc.status == 403:
        return PermissionMissing(
            f"Intune refused to {doing}: the portal's app registration needs the application permission "
            f"{PERMISSION} (with admin consent). {exc}",
            status=403,
            code=exc.code,
            request_id=exc.request_id,
            url=exc.url,
        )
    return exc


def create_script(graph: GraphClient, content: ScriptContent) -> str:
    """Create the detection script; its Intune ID."""
    try:
        created = graph.post(SCRIPTS, script_body(content))
    except GraphError as exc:
        raise _permission(exc, "create the readiness script") from exc
    script_id = created.get("id") if isinstance(created, dict) else None
    if not isinstance(script_id, str) or not script_id:
        raise GraphError("Intune created the readiness script but answered no ID for it", url=SCRIPTS)
    return script_id


def assign_script(graph: GraphClient, script_id: str, group_id: str) -> None:
    """Run the script on the group's devices every day, detection only."""
    body = {
        "deviceHealthScriptAssignments": [
            {
                "@odata.type": "#microsoft.graph.deviceHealthScriptAssignment",
                "target": {"@odata.type": "#microsoft.graph.groupAssignmentTarget", "groupId": group_id},
                "runRemediationScript": False,
                "runSchedule": {
                    "@odata.type": "#microsoft.graph.deviceHealthScriptDailySchedule",
                    "interval": 1,
                    "time": DAILY_AT,
                    "useUtc": False,
                },
            }
        ]
    }
    try:
        graph.post(f"{SCRIPTS}/{script_id}/assign", body)
    except GraphError as exc:
        raise _permission(exc, "assign the readiness script to the registration group") from exc


def update_script(graph: GraphClient, script_id: str, content: ScriptContent) -> None:
    """Replace the script's content and version in place (its assignment and run states stay)."""
    try:
        graph.request("PATCH", f"{SCRIPTS}/{script_id}", json_body=script_body(content))
    except GraphError as exc:
        raise _permission(exc, "update the readiness script") from exc


def script_exists(graph: GraphClient, script_id: str) -> bool:
    """Whether Intune still holds the script (api-reference/beta/api/intune-devices-devicehealthscript-get.md)."""
    try:
        graph.get(f"{SCRIPTS}/{script_id}", {"$select": "id,version"})
    except GraphError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def delete_script(graph: GraphClient, script_id: str) -> None:
    graph.request("DELETE", f"{SCRIPTS}/{script_id}")


def run_state_pages(
    graph: GraphClient, script_id: str, since: datetime | None = None, page_size: int | None = None
) -> Iterator[list[dict]]:
    """Every run state of the script, each with its device's azureADDeviceId and name, page after page; with
    `since`, only those updated after it (`lastStateUpdateDateTime gt`), or every one if Graph refuses that
    filter on its first page."""
    params: dict[str, str | int] = {"$select": RUN_STATE_SELECT, "$expand": RUN_STATE_EXPAND}
    if page_size:
        params["$top"] = page_size
    url = f"{SCRIPTS}/{script_id}/deviceRunStates"
    if since is not None:
        narrow = {**params, "$filter": f"lastStateUpdateDateTime gt {since:%Y-%m-%dT%H:%M:%SZ}"}
        pages = graph.pages(url, narrow)
        try:
            first = next(pages, None)
        except GraphError as exc:
            if exc.status != 400:
                raise
        else:
            if first is not None:
                yield first
            yield from pages
            return
    yield from graph.pages(url, params)
