"""The readiness script: its output parser, its deployment to Intune Remediations, and its page."""

from __future__ import annotations

import base64
import json

import pytest

from accounts.models import AuditEvent
from autopatch_portal.tenant.connection import connect
from autopatch_portal.tenant.health_scripts import PERMISSION, PermissionMissing
from autopatch_portal.tenant.reports import READINESS_CHECK_NAMES
from devices.models import ReadinessScript
from devices.remediation import script
from devices.remediation.deploy import deploy_readiness_script
from devices.remediation.output import ScriptOutputError, parse_script_output, report_from_run_state

from .portal_client import signed_in

pytestmark = pytest.mark.django_db

SCRIPTS = "/beta/deviceManagement/deviceHealthScripts"


def output(checks=None, **extra) -> str:
    checks = (
        checks
        if checks is not None
        else [{"name": name, "result": "passed", "detail": ""} for name in READINESS_CHECK_NAMES]
    )
    return json.dumps(
        {"schemaVersion": 1, "generatedDateTime": "2026-11-29T08:00:00Z", "checks": checks, **extra},
        separators=(",", ":"),
    )


# -- the parser -------------------------------------------------------------------------------------


def test_a_realistic_output_is_read_check_by_check():
    checks = [{"name": name, "result": "passed", "detail": ""} for name in READINESS_CHECK_NAMES]
    checks[2] = {
        "name": "Windows update policies managed via GPO",
        "result": "failed",
        "detail": "Group Policy sets Windows Update: WUServer, WUStatusServer",
    }

    report = parse_script_output(output(checks))

    assert report["generatedDateTime"] == "2026-11-29T08:00:00Z"
    assert [c["name"] for c in report["checks"]] == list(READINESS_CHECK_NAMES)
    assert report["checks"][2]["result"] == "failed"
    assert report["checks"][2]["detail"] == "Group Policy sets Windows Update: WUServer, WUStatusServer"


def test_an_output_over_2048_characters_is_refused_with_its_length():
    checks = [{"name": name, "result": "failed", "detail": "x" * 400} for name in READINESS_CHECK_NAMES]
    text = output(checks)

    with pytest.raises(ScriptOutputError, match=f"{len(text)} characters, more than 2048"):
        parse_script_output(text)


def test_an_output_that_intune_cut_at_2048_characters_is_refused_as_cut_short():
    checks = [{"name": name, "result": "failed", "detail": "x" * 400} for name in READINESS_CHECK_NAMES]

    with pytest.raises(ScriptOutputError, match="cut short"):
        parse_script_output(output(checks)[:2048])


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Windows readiness: OK", "not JSON"),
        ("", "printed nothing"),
        ("[1, 2]", "not a JSON object"),
        (output(schemaVersion=2), "schemaVersion 2"),
        (output(schemaVersion="1"), "schemaVersion '1'"),
        (output().replace('"2026-11-29T08:00:00Z"', "20261129"), "generatedDateTime"),
        (output([]), "non-empty list"),
        (output(["Internet connectivity"]), "each check is a JSON object"),
        (output([{"name": "Internet connectivity", "result": True}]), "must be 'passed' or 'failed'"),
        (output([{"name": "Internet connectivity", "result": "passed", "detail": 5}]), "detail of"),
        (output([{"name": 3, "result": "passed"}]), "unknown readiness check 3"),
        (output([{"name": "Disk space", "result": "passed"}]), "unknown readiness check 'Disk space'"),
    ],
)
def test_an_output_of_the_wrong_shape_is_refused_with_the_reason(text, reason):
    with pytest.raises(ScriptOutputError, match=reason):
        parse_script_output(text)


def test_a_run_state_gives_the_report_of_its_device_at_its_update_time():
    state = {
        "id": "x",
        "lastStateUpdateDateTime": "2026-11-29T09:30:00Z",
        "preRemediationDetectionScriptOutput": output(),
        "managedDevice": {"azureADDeviceId": "d-1", "deviceName": "PC-1"},
    }

    report = report_from_run_state(state)

    assert report["azureADDeviceId"] == "d-1"
    assert report["generatedDateTime"] == "2026-11-29T09:30:00Z"
    assert len(report["checks"]) == 8


def test_a_bad_run_state_is_refused_naming_its_device():
    state = {
        "lastStateUpdateDateTime": "2026-11-29T09:30:00Z",
        "preRemediationDetectionScriptOutput": "Access denied",
        "managedDevice": {"azureADDeviceId": "d-1", "deviceName": "PC-1"},
    }

    with pytest.raises(ScriptOutputError, match=r"d-1 \(PC-1\): the output is not JSON"):
        report_from_run_state(state)


def test_the_shipped_script_prints_the_documented_shape():
    text = script.script_text()
    assert "schemaVersion     = 1" in text and "$OutputLimit = 2048" in text
    for name in READINESS_CHECK_NAMES:
        assert f"'{name}'" in text, name
    assert len(script.script_version()) == 12


# -- deployment --------------------------------------------------------------------------------------


def test_a_deployment_creates_a_detection_only_system_64_bit_script_assigned_daily(builder, use_tenant):
    tenant = use_tenant(builder, deploy=False)

    deployment = deploy_readiness_script(connect(), "alice")

    assert deployment.action == "created"
    kept = tenant.health_scripts.scripts[deployment.script.intune_id]
    assert base64.b64decode(kept["detectionScriptContent"]).decode() == script.script_text()
    assert kept["runAsAccount"] == "system" and kept["runAs32Bit"] is False
    assert "remediationScriptContent" not in kept
    assert kept["version"] == script.script_version()
    (assignment,) = kept["assignments"]
    assert assignment["target"]["groupId"] == builder.registration_group["id"]
    assert assignment["runRemediationScript"] is False
    assert assignment["runSchedule"]["@odata.type"] == "#microsoft.graph.deviceHealthScriptDailySchedule"
    assert assignment["runSchedule"]["interval"] == 1
    row = ReadinessScript.objects.get()
    assert (row.intune_id, row.deployed_by, row.group_id) == (
        deployment.script.intune_id,
        "alice",
        builder.registration_group["id"],
    )


def test_a_second_deployment_of_the_same_version_changes_nothing(builder, use_tenant):
    tenant = use_tenant(builder)

    deployment = deploy_readiness_script(connect(), "alice")

    assert deployment.action == "unchanged"
    assert len(tenant.health_scripts.scripts) == 1
    assert [key for key in tenant.requests if "deviceHealthScripts" in key] == [
        f"GET {SCRIPTS}/{deployment.script.intune_id}"
    ]


def test_a_new_shipped_version_patches_the_deployed_script_in_place(builder, use_tenant):
    tenant = use_tenant(builder)
    row = ReadinessScript.objects.get()
    ReadinessScript.objects.filter(pk=row.pk).update(version="0ld")

    deployment = deploy_readiness_script(connect(), "bob-admin")

    assert deployment.action == "updated"
    assert tenant.requests[f"PATCH {SCRIPTS}/{row.intune_id}"] == 1
    assert list(tenant.health_scripts.scripts) == [row.intune_id]
    assert tenant.health_scripts.scripts[row.intune_id]["version"] == script.script_version()
    row.refresh_from_db()
    assert (row.version, row.updated_by, row.deployed_by) == (
        script.script_version(),
        "bob-admin",
        "test fixture",
    )


def test_without_the_permission_nothing_is_created_and_the_error_names_it(builder, use_tenant):
    tenant = use_tenant(builder, deploy=False)
    tenant.denied_permissions.add(PERMISSION)

    with pytest.raises(PermissionMissing, match=PERMISSION):
        deploy_readiness_script(connect(), "alice")

    assert tenant.health_scripts.scripts == {}
    assert not ReadinessScript.objects.exists()


def test_a_tenant_file_can_deny_the_permission(builder, use_tenant):
    data = builder.as_json()
    data["deniedPermissions"] = [PERMISSION]
    tenant = use_tenant(data, deploy=False)

    with pytest.raises(PermissionMissing, match=PERMISSION):
        deploy_readiness_script(connect(), "alice")

    assert tenant.health_scripts.scripts == {}


def test_an_assignment_that_fails_deletes_the_script_it_was_for(builder, use_tenant):
    tenant = use_tenant(builder, deploy=False)
    tenant.inject("/assign", 403, method="POST")

    with pytest.raises(PermissionMissing):
        deploy_readiness_script(connect(), "alice")

    assert tenant.requests[f"POST {SCRIPTS}"] == 1
    assert tenant.health_scripts.scripts == {}
    assert not ReadinessScript.objects.exists()


def test_a_script_of_the_shipped_version_deleted_in_intune_is_created_again(builder, use_tenant):
    tenant = use_tenant(builder)
    old = ReadinessScript.objects.get()
    tenant.health_scripts.scripts.clear()
    tenant.health_scripts._save()

    deployment = deploy_readiness_script(connect(), "alice")

    assert deployment.action == "created"
    assert list(tenant.health_scripts.scripts) == [ReadinessScript.objects.get().intune_id] != [old.intune_id]


def test_an_outdated_script_deleted_in_intune_is_created_again(builder, use_tenant):
    tenant = use_tenant(builder)
    old = ReadinessScript.objects.get()
    tenant.health_scripts.scripts.clear()
    tenant.health_scripts._save()
    ReadinessScript.objects.filter(pk=old.pk).update(version="0ld")

    deployment = deploy_readiness_script(connect(), "alice")

    assert deployment.action == "created"
    assert list(tenant.health_scripts.scripts) == [ReadinessScript.objects.get().intune_id] != [old.intune_id]


# -- the page ----------------------------------------------------------------------------------------


def test_a_reader_sees_and_downloads_the_script_but_cannot_deploy_it(bob, builder, use_tenant):
    use_tenant(builder, deploy=False)
    client = signed_in(bob)

    page = client.get("/devices/readiness-script/")
    download = client.get("/devices/readiness-script/download/")
    deploy = client.form_post("/devices/readiness-script/deploy/")

    assert page.status_code == 200
    assert "Not deployed" in page.text and "Deploy to Intune" not in page.text
    assert "Service Administrators deploy the script" in page.text
    assert download.status_code == 200
    assert download["Content-Disposition"] == f'attachment; filename="{script.SCRIPT_FILE_NAME}"'
    assert download.content.decode() == script.script_text()
    assert deploy.status_code == 403
    assert not ReadinessScript.objects.exists()


def test_an_admin_deploys_from_the_page_and_sees_what_is_deployed(alice, builder, use_tenant):
    use_tenant(builder, deploy=False)
    client = signed_in(alice)
    assert "Deploy to Intune" in client.get("/devices/readiness-script/").text

    response = client.form_post("/devices/readiness-script/deploy/", follow=True)

    assert "The readiness script was created in Intune" in response.text
    row = ReadinessScript.objects.get()
    assert row.intune_id in response.text and "by alice" in response.text
    assert "Deploy to Intune" not in response.text and "Check the deployment" in response.text
    event = AuditEvent.objects.get(action=AuditEvent.Action.READINESS_SCRIPT)
    assert (event.actor, event.result, event.target) == ("alice", "created", row.intune_id)


def test_an_admin_sees_an_out_of_date_script_and_updates_it(alice, builder, use_tenant):
    use_tenant(builder)
    ReadinessScript.objects.update(version="0ld")
    client = signed_in(alice)
    assert "Out of date" in client.get("/devices/readiness-script/").text

    response = client.form_post("/devices/readiness-script/deploy/", follow=True)

    assert "The readiness script was updated in Intune" in response.text
    assert AuditEvent.objects.get(action=AuditEvent.Action.READINESS_SCRIPT).result == "updated"


def test_a_missing_permission_is_named_on_the_page_and_in_the_audit_log(alice, builder, use_tenant):
    tenant = use_tenant(builder, deploy=False)
    tenant.denied_permissions.add(PERMISSION)

    response = signed_in(alice).form_post("/devices/readiness-script/deploy/")

    assert response.status_code == 502
    assert f"needs the application permission {PERMISSION}" in response.text
    assert "Nothing was left half-made" in response.text
    event = AuditEvent.objects.get(action=AuditEvent.Action.READINESS_SCRIPT)
    assert event.result.startswith("failed:") and PERMISSION in event.result
    assert not ReadinessScript.objects.exists()


def test_graph_errors_other_than_permission_are_shown_as_graphs(alice, builder, use_tenant):
    tenant = use_tenant(builder, deploy=False)
    tenant.inject(SCRIPTS, 400, method="POST")

    response = signed_in(alice).form_post("/devices/readiness-script/deploy/")

    assert response.status_code == 502
    assert "Microsoft Graph refused" in response.text
    assert not ReadinessScript.objects.exists()
