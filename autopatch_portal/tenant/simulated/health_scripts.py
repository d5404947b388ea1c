"""Intune Remediations in the simulated tenant: device health scripts, their assignments and run states.

Created scripts and their assignments are kept (in a JSON file beside the portal's var directory when the
connection gives one, so the web, the worker and a management command share them, and a reload of the tenant file
keeps them). The run states of an assigned script come from the tenant file's `readinessReports` (newest per
device), written as the portal's readiness script prints them, cut at 2,048 characters as Intune does. Writes
answer 403 when the app lacks (SimulatedTenant.has_permission: the file's `applicationPermissions` less its
`deniedPermissions`, or a test's `denied_permissions`)
DeviceManagementConfiguration.ReadWrite.All. Reference pages: see autopatch_portal/tenant/health_scripts.py.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ..reports import REPORT_SCHEMA_VERSION, SCRIPT_OUTPUT_LIMIT
from .tenant import GRAPH_HOST, Response, _moment, intune_error, json_response

if TYPE_CHECKING:
    from .tenant import SimulatedTenant

WRITE_PERMISSION = "DeviceManagementConfiguration.ReadWrite.All"
SCRIPTS = r"/beta/deviceManagement/deviceHealthScripts"
RUN_STATE_FILTER = re.compile(
    r"lastStateUpdateDateTime (gt|ge) (\d{4}-\d\d-\d\dT[0-9:.]+(?:Z|[+-]\d\d:\d\d))"
)
EXPAND = re.compile(r"managedDevice(?:\(\$select=([\w,]+)\))?")
READ_ONLY = ("id", "createdDateTime", "lastModifiedDateTime")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class HealthScripts:
    """The tenant's device health scripts, and the routes that answer for them."""

    def __init__(self, tenant: SimulatedTenant):
        self.tenant = tenant
        self.state_path: Path | None = None
        self.scripts: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._run_states: list[dict] | None = None
        tenant.extra_routes.extend(
            [
                ("POST", GRAPH_HOST, SCRIPTS, self._create),
                ("POST", GRAPH_HOST, rf"{SCRIPTS}/([^/]+)/assign", self._assign),
                ("PATCH", GRAPH_HOST, rf"{SCRIPTS}/([^/]+)", self._update),
                ("DELETE", GRAPH_HOST, rf"{SCRIPTS}/([^/]+)", self._delete),
                ("GET", GRAPH_HOST, rf"{SCRIPTS}/([^/]+)", self._get),
                ("GET", GRAPH_HOST, rf"{SCRIPTS}/([^/]+)/deviceRunStates", self._device_run_states),
            ]
        )

    # -- what is kept --------------------------------------------------------------------------

    def keep_in(self, path: Path) -> None:
        """Keep the scripts in `path` (read now and before every answer, written after every change)."""
        self.state_path = path
        self._load()

    def _load(self) -> None:
        if self.state_path is not None and self.state_path.exists():
            try:
                self.scripts = json.loads(self.state_path.read_text(encoding="utf-8"))
            except ValueError:
                self.scripts = {}

    def _save(self) -> None:
        if self.state_path is not None:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.state_path.with_suffix(".tmp")
            temporary.write_text(json.dumps(self.scripts), encoding="utf-8")
            temporary.replace(self.state_path)

    # -- routes ---------------------------------------------------------------------------------

    def _refused(self, headers: dict[str, str], write: bool) -> Response | None:
        if write and not self.tenant.has_permission(WRITE_PERMISSION):
            return intune_error(
                403,
                "Forbidden",
                "Application is not authorized to perform this operation. Application must have "
                f"one of the following scopes: {WRITE_PERMISSION}",
            )
        return None

    def _body(self, form: dict[str, str]) -> dict | None:
        try:
            body = json.loads(form.get("_body") or "{}")
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _script(self, script_id: str) -> tuple[dict | None, Response | None]:
        self._load()
        script = self.scripts.get(script_id)
        if script is None:
            return None, intune_error(
                404, "ResourceNotFound", f"DeviceHealthScript with id {script_id} not found"
            )
        return script, None

    def _create(self, tenant, match, query, headers, form) -> Response:
        refused = self._refused(headers, write=True)
        if refused:
            return refused
        body = self._body(form)
        if body is None or not body.get("displayName") or not body.get("detectionScriptContent"):
            return intune_error(
                400, "BadRequest", "A device health script needs a displayName and a detection script."
            )
        with self._lock:
            self._load()
            script_id = str(uuid.uuid4())
            now = _now()
            script = {
                **{k: v for k, v in body.items() if k not in READ_ONLY},
                "id": script_id,
                "createdDateTime": now,
                "lastModifiedDateTime": now,
                "assignments": [],
            }
            self.scripts[script_id] = script
            self._save()
        return json_response(201, self._public(script))

    def _assign(self, tenant, match, query, headers, form) -> Response:
        refused = self._refused(headers, write=True)
        if refused:
            return refused
        body = self._body(form)
        assignments = body.get("deviceHealthScriptAssignments") if body else None
        if not isinstance(assignments, list) or not all(
            isinstance(a, dict)
            and isinstance(a.get("target"), dict)
            and a["target"].get("groupId") in tenant.groups
            for a in assignments
        ):
            return intune_error(400, "BadRequest", "Each assignment targets a group of the tenant.")
        with self._lock:
            script, missing = self._script(match.group(1))
            if script is None:
                return missing  # type: ignore[return-value]
            script["assignments"] = [
                {**a, "id": f"{script['id']}:{a['target']['groupId']}"} for a in assignments
            ]
            self._save()
        return Response(204)

    def _update(self, tenant, match, query, headers, form) -> Response:
        refused = self._refused(headers, write=True)
        if refused:
            return refused
        body = self._body(form)
        if body is None:
            return intune_error(400, "BadRequest", "The request body is not a JSON object.")
        with self._lock:
            script, missing = self._script(match.group(1))
            if script is None:
                return missing  # type: ignore[return-value]
            script.update({k: v for k, v in body.items() if k not in READ_ONLY})
            script["lastModifiedDateTime"] = _now()
            self._save()
        return json_response(200, self._public(script))

    def _delete(self, tenant, match, query, headers, form) -> Response:
        refused = self._refused(headers, write=True)
        if refused:
            return refused
        with self._lock:
            script, missing = self._script(match.group(1))
            if script is None:
                return missing  # type: ignore[return-value]
            del self.scripts[script["id"]]
            self._save()
        return Response(204)

    def _get(self, tenant, match, query, headers, form) -> Response:
        refused = self._refused(headers, write=False)
        if refused:
            return refused
        script, missing = self._script(match.group(1))
        return missing if script is None else json_response(200, self._public(script))  # type: ignore[return-value]

    def _device_run_states(self, tenant, match, query, headers, form) -> Response:
        refused = self._refused(headers, write=False)
        if refused:
            return refused
        script, missing = self._script(match.group(1))
        if script is None:
            return missing  # type: ignore[return-value]
        states = self.run_states() if script.get("assignments") else []
        wanted = query.get("$filter", "")
        if wanted:
            found = RUN_STATE_FILTER.fullmatch(wanted)
            if not found:
                return intune_error(400, "BadRequest", f"Unsupported filter: {wanted}")
            after = _moment(found.group(2))
            strict = found.group(1) == "gt"
            states = [
                s
                for s in states
                if (moment := _moment(s["lastStateUpdateDateTime"])) is not None
                and (moment > after if strict else moment >= after)  # type: ignore[operator]
            ]
        expand = EXPAND.fullmatch(query.get("$expand", "")) if query.get("$expand") else None
        fields = [f for f in query.get("$select", "").split(",") if f]
        device_fields = expand.group(1).split(",") if expand and expand.group(1) else None

        def shape(state: dict) -> dict:
            out = {
                k: v
                for k, v in state.items()
                if k != "managedDevice" and (not fields or k in fields or k == "id")
            }
            if expand:
                device = state["managedDevice"]
                out["managedDevice"] = {k: device.get(k) for k in device_fields} if device_fields else device
            return out

        return tenant._page(
            states, query, _Parts(f"{SCRIPTS}/{script['id']}/deviceRunStates"), intune=True, shape=shape
        )

    # -- run states -----------------------------------------------------------------------------

    def run_states(self) -> list[dict]:
        """One run state per device that has a readiness report in the tenant file (its newest)."""
        if self._run_states is not None:
            return self._run_states
        newest: dict[str, dict] = {}
        for report in self.tenant.readiness_reports:
            device_id = report["azureADDeviceId"]
            kept = newest.get(device_id)
            if kept is None or (_moment(report["generatedDateTime"]) or datetime.min.replace(tzinfo=UTC)) > (
                _moment(kept["generatedDateTime"]) or datetime.min.replace(tzinfo=UTC)
            ):
                newest[device_id] = report
        managed = {}
        for item in self.tenant.managed_devices:
            managed.setdefault(item["azureADDeviceId"], item)
        states = []
        for device_id, report in newest.items():
            device = managed.get(device_id) or {
                "id": device_id,
                "azureADDeviceId": device_id,
                "deviceName": None,
            }
            checks = report["checks"]
            failed = isinstance(checks, list) and any(
                isinstance(c, dict) and c.get("result") != "passed" for c in checks
            )
            output = orjson.dumps(  # compact, non-ASCII as it is
                {
                    "schemaVersion": REPORT_SCHEMA_VERSION,
                    "generatedDateTime": report["generatedDateTime"],
                    "checks": checks,
                }
            ).decode()[:SCRIPT_OUTPUT_LIMIT]  # Intune keeps this much of a detection script's output
            states.append(
                {
                    "@odata.type": "#microsoft.graph.deviceHealthScriptDeviceState",
                    "id": f"{device['id']}",
                    "detectionState": "fail" if failed else "success",
                    "lastStateUpdateDateTime": report["generatedDateTime"],
                    "preRemediationDetectionScriptOutput": output,
                    "preRemediationDetectionScriptError": None,
                    "remediationState": "skipped",
                    "managedDevice": {
                        "id": device["id"],
                        "azureADDeviceId": device_id,
                        "deviceName": device.get("deviceName"),
                    },
                }
            )
        self._run_states = states
        return states

    @staticmethod
    def _public(script: dict) -> dict:
        return {
            "@odata.type": "#microsoft.graph.deviceHealthScript",
            **{k: v for k, v in script.items() if k != "assignments"},
        }


class _Parts:
    """The part of a split URL the pager uses (its path)."""

    def __init__(self, path: str):
        self.path = path
