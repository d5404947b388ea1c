"""What the API changes: device actions, discovery, readiness reports and registrations, each per device, each in
the audit log under the key's name; and bad input refused with a JSON 4xx that says what is wrong."""

from __future__ import annotations

import json

import pytest

from accounts.models import AuditEvent
from devices.models import Device, DeviceStatusChange, DiscoveryRun, ReadinessReport
from devices.runs import discover_now

from .api_client import ApiClient, api_key


@pytest.fixture
def admin(db):
    return ApiClient(api_key("administrator", "provisioning"))


def device_id(name: str) -> str:
    return Device.objects.get(device_name=name).azure_ad_device_id


def report(device: str, failed: dict[str, str] | None = None, at: str = "2030-01-01T08:00:00Z") -> dict:
    failed = failed or {}
    names = ["Windows Autopatch network endpoints", "Internet connectivity"]
    return {
        "azureADDeviceId": device,
        "generatedDateTime": at,
        "checks": [
            {"name": n, "result": "failed" if n in failed else "passed", "detail": failed.get(n, "")}
            for n in names
        ],
    }


# -- bad input ---------------------------------------------------------------------------------------------------


def test_bad_json_wrong_type_and_oversize_bodies_are_4xx_with_a_reason(admin, blade_tenant, settings):
    bad_json = admin.api_post("/api/v1/registrations", '{"azureADDeviceIds": [')
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["detail"]
    form = admin.api_post(
        "/api/v1/registrations", "azureADDeviceIds=1", content_type="application/x-www-form-urlencoded"
    )
    assert form.status_code == 415 and form.json()["code"] == "unsupported_media_type"
    too_many = admin.api_post("/api/v1/registrations", {"azureADDeviceIds": [f"id-{i}" for i in range(1001)]})
    assert too_many.status_code == 400 and "azureADDeviceIds" in too_many.json()["errors"]
    assert "1000" in too_many.json()["detail"]
    settings.AUTOPATCH_API_MAX_BODY_BYTES = 2048
    huge = admin.api_post("/api/v1/readiness-reports", [report(f"dev-{i}") for i in range(40)])
    assert huge.status_code == 413 and "larger than 2048 bytes" in huge.json()["detail"]
    wrong_shape = admin.api_post("/api/v1/devices/actions/exclude", {"azureADDeviceIds": "not-a-list"})
    assert wrong_shape.status_code == 400 and "azureADDeviceIds" in wrong_shape.json()["errors"]
    assert AuditEvent.objects.exclude(action=AuditEvent.Action.API_KEY).count() == 0  # nothing was done


def test_an_unknown_action_is_a_json_404(admin, blade_tenant):
    response = admin.api_post("/api/v1/devices/actions/delete", {"azureADDeviceIds": [device_id("ALPHA-01")]})
    assert response.status_code == 404 and "assign-ring, exclude, restore" in response.json()["detail"]


# -- device actions -----------------------------------------------------------------------------------------------


def test_assign_ring_answers_per_device_and_is_audited_under_the_key(admin, blade_tenant):
    ids = [device_id("ALPHA-01"), device_id("CHARLIE-05"), "11111111-2222-3333-4444-555555555555"]
    response = admin.api_post(
        "/api/v1/devices/actions/assign-ring", {"azureADDeviceIds": ids, "ring": "test"}
    )
    body = response.json()
    assert response.status_code == 200 and body["done"] == 1
    assert [r["done"] for r in body["results"]] == [True, False, False]
    assert "only registered, Active devices" in body["results"][1]["message"]
    assert body["results"][2]["message"] == "No device has this Azure AD device ID."
    assert Device.objects.get(device_name="ALPHA-01").ring == "test"
    event = AuditEvent.objects.get(action=AuditEvent.Action.DEVICE_ACTION)
    assert event.actor == "api-key:provisioning" and event.result == "Assign ring (Test): 1 of 2 done"


def test_assign_ring_needs_a_ring(admin, blade_tenant):
    response = admin.api_post(
        "/api/v1/devices/actions/assign-ring", {"azureADDeviceIds": [device_id("ALPHA-01")]}
    )
    assert response.status_code == 400 and "ring" in response.json()["errors"]


def test_exclude_then_restore_through_the_api(admin, blade_tenant):
    ids = [device_id("ALPHA-02")]
    assert admin.api_post("/api/v1/devices/actions/exclude", {"azureADDeviceIds": ids}).json()["done"] == 1
    assert Device.objects.get(device_name="ALPHA-02").readiness_status == "excluded"
    restored = admin.api_post("/api/v1/devices/actions/restore", {"azureADDeviceIds": ids}).json()
    assert restored["done"] == 1 and restored["discovery_run"] is not None
    assert Device.objects.get(device_name="ALPHA-02").excluded is False


# -- discovery ----------------------------------------------------------------------------------------------------


def test_a_discovery_starts_and_can_be_followed(admin, blade_tenant):
    response = admin.api_post("/api/v1/discoveries")
    assert response.status_code == 202
    body = response.json()
    assert body["started"] is True and body["run"]["trigger"] == "api"
    assert body["run"]["requested_by"] == "api-key:provisioning" and body["run"]["status"] == "queued"
    again = admin.api_post("/api/v1/discoveries").json()
    assert again["started"] is False and again["run"]["id"] == body["run"]["id"]
    followed = admin.api_get(f"/api/v1/discoveries/{body['run']['id']}").json()
    assert followed["id"] == body["run"]["id"] and followed["active"] is True
    assert (
        AuditEvent.objects.filter(action=AuditEvent.Action.DISCOVERY, actor="api-key:provisioning").count()
        == 2
    )
    assert admin.api_get("/api/v1/discoveries/999999").status_code == 404


# -- readiness reports --------------------------------------------------------------------------------------------


def test_a_report_changes_a_registered_devices_readiness_status_at_once(blade_tenant, db):
    reporter = ApiClient(api_key("readiness", "fleet"))
    alpha = Device.objects.get(device_name="ALPHA-01")
    response = reporter.api_post(
        "/api/v1/readiness-reports",
        report(alpha.azure_ad_device_id, {"Internet connectivity": "Proxy refused"}),
    )
    assert response.status_code == 200
    assert response.json() == {
        "received": 1,
        "stored": 1,
        "unchanged": 0,
        "rejected": [],
        "devices_updated": 1,
    }
    alpha_after = Device.objects.get(pk=alpha.pk)
    assert (
        alpha_after.readiness_status == "readiness_failed"
        and alpha_after.failed_checks == "Internet connectivity"
    )
    assert alpha_after.state_version == alpha.state_version + 1  # a run that read it before writes it no more
    change = DeviceStatusChange.objects.filter(device=alpha).first()
    assert (change.from_status, change.to_status) == ("active", "readiness_failed") and change.run is None
    assert "Internet connectivity" in change.cause
    detail = [c for c in alpha_after.check_details if c["kind"] == "readiness" and not c["passed"]]
    assert detail[0]["reason"] == "Proxy refused"
    assert any(c["kind"] == "prerequisite" for c in alpha_after.check_details)  # discovery's checks are kept
    event = AuditEvent.objects.get(action=AuditEvent.Action.READINESS_REPORT)
    assert (
        event.actor == "api-key:fleet"
        and event.result == "1 stored, 0 unchanged, 0 rejected; 1 devices updated"
    )
    # A newer passing report makes it Active again; the same report again changes nothing.
    fixed = report(alpha.azure_ad_device_id, at="2030-01-01T09:00:00Z")
    assert reporter.api_post("/api/v1/readiness-reports", [fixed]).json()["devices_updated"] == 1
    assert Device.objects.get(pk=alpha.pk).readiness_status == "active"
    assert reporter.api_post("/api/v1/readiness-reports", [fixed]).json()["unchanged"] == 1


def test_discovery_keeps_the_status_a_report_gave(admin, blade_tenant):
    alpha = device_id("ALPHA-03")
    admin.api_post("/api/v1/readiness-reports", report(alpha, {"Internet connectivity": "Offline"}))
    discover_now()
    assert Device.objects.get(azure_ad_device_id=alpha).readiness_status == "readiness_failed"


def test_a_report_for_an_unknown_device_is_kept_until_it_appears(admin, blade_tenant, builder, use_tenant):
    newcomer = builder.device("FOXTROT-08")
    response = admin.api_post(
        "/api/v1/readiness-reports", report(newcomer["deviceId"], {"Internet connectivity": "Offline"})
    )
    assert response.json()["stored"] == 1 and response.json()["devices_updated"] == 0
    assert ReadinessReport.objects.filter(azure_ad_device_id=newcomer["deviceId"]).exists()
    use_tenant(builder)
    discover_now()
    device = Device.objects.get(device_name="FOXTROT-08")
    assert device.readiness_status == "readiness_failed" and device.failed_checks == "Internet connectivity"


def test_bad_reports_are_rejected_one_by_one(admin, blade_tenant):
    alpha = device_id("ALPHA-01")
    naive = report(alpha, at="2030-01-01T08:00:00")
    nul = report(alpha)
    nul["checks"][0]["detail"] = "a\x00b"
    long_id = report("x" * 65)
    unknown_check = report(alpha)
    unknown_check["checks"][0]["name"] = "Coffee machine"
    numeric_time = {**report(alpha), "generatedDateTime": 20300101}
    nul_id = report("de\x00v")  # the ID itself: named without its NUL, never looked up
    response = admin.api_post(
        "/api/v1/readiness-reports", [naive, nul, long_id, unknown_check, numeric_time, nul_id, report(alpha)]
    )
    body = response.json()
    assert response.status_code == 200 and body["stored"] == 1 and len(body["rejected"]) == 6
    text = " | ".join(body["rejected"])
    for reason in (
        "no time zone",
        "NUL character",
        "longer than 64",
        "unknown readiness check 'Coffee machine'",
        "not a date and time",
    ):
        assert reason in text
    only_bad = admin.api_post("/api/v1/readiness-reports", [naive])
    assert only_bad.status_code == 400 and "no time zone" in only_bad.json()["detail"]
    assert admin.api_post("/api/v1/readiness-reports", []).status_code == 400
    over = admin.api_post("/api/v1/readiness-reports", [report(alpha)] * 1001)
    assert over.status_code == 400 and "At most 1000 reports" in over.json()["detail"]


# -- registrations ------------------------------------------------------------------------------------------------


def windows_365_tenant(builder, use_tenant):
    """The blade's tenant plus Cloud PCs that are not in the registration group (Windows 365 registers them)."""
    from .blade_tenant import build_blade_tenant

    cloud_pcs = [builder.device(f"CPC-{i:02d}", member_of=None, model="Cloud PC Enterprise") for i in (1, 2)]
    home = builder.device("CPC-HOME", member_of=None, sku_number=101)
    build_blade_tenant(builder, use_tenant)
    return [d["deviceId"] for d in cloud_pcs], home["deviceId"]


def test_registration_by_device_id_registers_devices_outside_the_group(admin, db, builder, use_tenant):
    (cpc1, cpc2), home = windows_365_tenant(builder, use_tenant)
    unknown = "99999999-8888-7777-6666-555555555555"
    response = admin.api_post(
        "/api/v1/registrations", {"azureADDeviceIds": [cpc1, home, unknown, device_id("ALPHA-01")]}
    )
    assert response.status_code == 200
    body = response.json()
    results = {r["azureADDeviceId"]: r for r in body["results"]}
    assert body["registered"] == 1 and list(results) == [cpc1, home, unknown, device_id("ALPHA-01")]
    assert results[cpc1]["result"] == "registered" and results[cpc1]["ring"] in ("first", "fast", "broad")
    assert results[cpc1]["readiness_status"] == "active"
    assert results[home]["result"] == "notRegistered"
    assert [c["name"] for c in results[home]["failed_checks"]] == ["Windows edition"]
    assert results[home]["failed_checks"][0]["remediation"]
    assert results[unknown]["result"] == "notRegistered"
    assert results[unknown]["message"] == "No Entra ID device has this device ID."
    assert results[device_id("ALPHA-01")]["result"] == "alreadyRegistered"
    device = Device.objects.get(azure_ad_device_id=cpc1)
    assert device.is_registered and device.added_through == "api" and not device.in_registration_group
    assert device.status_changes.get().cause.startswith("Registered through the API by api-key:provisioning")
    assert not Device.objects.filter(azure_ad_device_id=home).exists()  # nothing is kept of a refused device
    event = AuditEvent.objects.get(action=AuditEvent.Action.REGISTRATION)
    assert event.actor == "api-key:provisioning" and event.result == "1 of 4 registered"
    # Asking again changes nothing.
    again = admin.api_post("/api/v1/registrations", {"azureADDeviceIds": [cpc1]}).json()
    assert again["results"][0]["result"] == "alreadyRegistered" and again["registered"] == 0
    assert cpc2 not in json.dumps(body)
    odd = admin.api_post("/api/v1/registrations", {"azureADDeviceIds": ["a?b/c'd"]}).json()["results"][0]
    assert odd["result"] == "notRegistered" and "GUIDs" in odd["message"]


def test_an_api_registration_survives_the_hourly_discovery(admin, db, builder, use_tenant):
    (cpc1, _), _ = windows_365_tenant(builder, use_tenant)
    admin.api_post("/api/v1/registrations", {"azureADDeviceIds": [cpc1]})
    ring = Device.objects.get(azure_ad_device_id=cpc1).ring
    run = discover_now()
    assert run.status == DiscoveryRun.Status.SUCCEEDED
    device = Device.objects.get(azure_ad_device_id=cpc1)
    assert device.is_registered and device.ring == ring and device.readiness_status == "active"
    assert device.added_through == "api" and not device.in_registration_group
    # And the blade lists it under Ready, where an admin sees it came through the API.
    reader = ApiClient(api_key("reader"))
    listed = reader.api_get("/api/v1/devices", {"tab": "ready", "q": cpc1}).json()["results"]
    assert [d["added_through"] for d in listed] == ["api"]


def test_a_device_discovery_has_not_read_yet_is_read_from_the_tenant(admin, db, builder, use_tenant):
    windows_365_tenant(builder, use_tenant)
    fresh = builder.device("CPC-NEW", member_of=None)  # provisioned since the last discovery run
    tenant = use_tenant(builder)
    before = tenant.total_requests("/v1.0/devices(")
    body = admin.api_post("/api/v1/registrations", {"azureADDeviceIds": [fresh["deviceId"]]}).json()
    assert body["results"][0]["result"] == "registered", body
    assert tenant.total_requests("/v1.0/devices(") == before + 1
    assert Device.objects.get(azure_ad_device_id=fresh["deviceId"]).device_name == "CPC-NEW"
