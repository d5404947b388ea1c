"""GET /api/v1/devices and /api/v1/devices/{azureADDeviceId}: the blade's tabs, search, filters, sort and paging
through the same query, and one device with its checks, readiness report and status history."""

from __future__ import annotations

import pytest

from devices.checks import STORED_DEFAULTS
from devices.models import Device, DiscoveryRun

from .api_client import ApiClient, api_key
from .blade_tenant import NOT_READY, NOT_REGISTERED, READY
from .portal_client import signed_in
from .test_blade_tabs import names_in


@pytest.fixture
def reader(db):
    return ApiClient(api_key("reader"))


def names(response) -> list[str]:
    assert response.status_code == 200, response.content[:300]
    return [device["device_name"] for device in response.json()["results"]]


def test_the_list_shows_a_tab_as_the_blade_does(reader, blade_tenant, alice):
    assert names(reader.api_get("/api/v1/devices", {"tab": "ready"})) == sorted(READY)
    assert names(reader.api_get("/api/v1/devices", {"tab": "not-ready"})) == list(NOT_READY)
    assert names(reader.api_get("/api/v1/devices", {"tab": "not-registered"})) == sorted(NOT_REGISTERED)
    assert sorted(names(reader.api_get("/api/v1/devices"))) == sorted(READY + NOT_READY + NOT_REGISTERED)
    # The same search, filter and sort as the tab, giving the same devices in the same order.
    client = signed_in(alice)
    for query in ("?q=alpha&sort=-device_name", "?management=co_managed", "?sort=-serial_number"):
        blade = names_in(client.get(f"/devices/ready/{query}").content.decode())
        assert names(reader.get(f"/api/v1/devices{query}&tab=ready", headers=reader.headers_for())) == blade


def test_a_device_in_the_list_carries_every_column_by_key(reader, blade_tenant):
    device = Device.objects.get(device_name="BRAVO-04")
    [found] = reader.api_get("/api/v1/devices", {"q": device.azure_ad_device_id}).json()["results"]
    assert found["azure_ad_device_id"] == device.azure_ad_device_id
    assert found["readiness_status"] == "active" and found["management"] == "co_managed"
    assert found["ring"] == device.ring and found["serial_number"] == device.serial_number
    assert found["last_intune_checkin"].endswith("Z")
    # The time of the run that found it (the one blade_tenant ran), as the device itself answers it too.
    run_time = DiscoveryRun.objects.get().sightings_at.isoformat().replace("+00:00", "Z")
    assert found["last_discovered_at"] == run_time
    assert (
        reader.api_get(f"/api/v1/devices/{device.azure_ad_device_id}").json()["last_discovered_at"]
        == run_time
    )


def test_cursor_paging_walks_every_device_once(reader, blade_tenant):
    seen, response = [], reader.api_get("/api/v1/devices", {"per_page": 2, "sort": "serial_number"})
    pages = 0
    while True:
        seen += names(response)
        pages += 1
        body = response.json()
        if body["next"] is None:
            assert body["next_cursor"] is None
            break
        response = reader.get(body["next"], headers=reader.headers_for())
    expected = list(Device.objects.order_by("serial_number", "pk").values_list("device_name", flat=True))
    assert seen == expected and pages == 4


@pytest.mark.parametrize(
    ("params", "complaint"),
    [
        ({"per_page": 251}, "per_page must be between 1 and 250"),
        ({"per_page": "ten"}, "whole numbers"),
        ({"tab": "everything"}, "unknown tab"),
        ({"ring": "slow"}, "ring 'slow' is not one of the choices"),
        ({"sort": "password"}, "cannot sort by"),
        ({"q": "x" * 201}, "longer than 200"),
        ({"cursor": "forged"}, "The cursor is not one this query gave"),
    ],
)
def test_a_bad_parameter_is_a_400_that_says_what_is_wrong(reader, blade_tenant, params, complaint):
    response = reader.api_get("/api/v1/devices", params)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert complaint in response.json()["detail"]


def test_checks_stored_in_full_by_an_earlier_release_show_the_same(reader, blade_tenant, alice):
    """Devices store a passed check with nothing to say as its name and any other without the defaults; rows
    written before hold every key (or each passed check as its name and result), and the API and the fly-in show
    every form alike."""
    device = Device.objects.get(device_name="CHARLIE-05")
    client = signed_in(alice)

    def shown() -> tuple[list[dict], str]:
        checks = reader.api_get(f"/api/v1/devices/{device.azure_ad_device_id}").json()["checks"]
        return checks, client.get(f"/devices/device/{device.pk}/", HTTP_HX_REQUEST="true").content.decode()

    now = shown()
    assert all(set(check) == {"name", "kind", "passed", "reason", "remediation"} for check in now[0])
    stored = Device.objects.get(pk=device.pk).checks
    assert "Last Intune check-in" in stored and "Microsoft Edge network endpoints" in stored  # as stored
    assert next(c for c in stored if isinstance(c, dict))["name"] == "Internet connectivity"  # the failed one
    assert {c["name"]: c["kind"] for c in now[0]}["Microsoft Edge network endpoints"] == "readiness"
    Device.objects.filter(pk=device.pk).update(checks=now[0])  # in full, as an earlier release stored them
    assert shown() == now
    earlier = [{k: v for k, v in c.items() if v != STORED_DEFAULTS.get(k)} for c in now[0]]
    assert {"name": "Last Intune check-in", "passed": True} in earlier
    # Each passed check as its name and result: the form before names alone.
    Device.objects.filter(pk=device.pk).update(checks=earlier)
    assert shown() == now


def test_a_cursor_of_another_query_is_refused(reader, blade_tenant):
    cursor = reader.api_get("/api/v1/devices", {"per_page": 1}).json()["next_cursor"]
    response = reader.api_get("/api/v1/devices", {"per_page": 1, "cursor": cursor, "tab": "ready"})
    assert response.status_code == 400 and "cursor" in response.json()["errors"]


def test_a_device_answers_with_checks_report_and_history(reader, blade_tenant):
    device = Device.objects.get(device_name="CHARLIE-05")
    body = reader.api_get(f"/api/v1/devices/{device.azure_ad_device_id}").json()
    assert body["device_name"] == "CHARLIE-05" and body["readiness_status"] == "readiness_failed"
    failed = [c for c in body["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["Internet connectivity"]
    assert failed[0]["kind"] == "readiness" and failed[0]["remediation"]
    report = body["readiness_report"]
    assert {
        "name": "Internet connectivity",
        "result": "failed",
        "detail": "No route to the internet from the device.",
    } in report["checks"]
    assert [h["to_status"] for h in body["status_history"]] == ["readiness_failed"]
    assert body["status_history"][0]["discovery_run"] is not None


@pytest.mark.parametrize("device_id", ["00000000-0000-0000-0000-000000000000", "%00", "x" * 300])
def test_an_unknown_or_impossible_device_id_is_a_json_404(reader, blade_tenant, device_id):
    response = reader.api_get(f"/api/v1/devices/{device_id}")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
