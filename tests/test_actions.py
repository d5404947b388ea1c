"""Device actions: Assign ring, Exclude device, Restore excluded device; administrators only, per-device outcomes, recorded."""

from __future__ import annotations

from accounts.models import AuditEvent
from devices.discovery import run_discovery
from devices.models import Device, DiscoveryRun
from devices.runs import discover_now
from tests.test_blade_tabs import names_in, signed_in

pytest_plugins = ["tests.blade_tenant"]


def pks(*names: str) -> list[int]:
    return [Device.objects.get(device_name=name).pk for name in names]


def test_the_confirmation_names_the_selected_devices(alice, blade_tenant):
    response = signed_in(alice).get("/devices/actions/exclude/", {"ids": pks("ALPHA-01", "CHARLIE-05")})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Exclude device" in html and "2 devices selected" in html and "ALPHA-01" in html and "CHARLIE-05" in html
    assert Device.objects.filter(excluded=True).count() == 0  # asking changes nothing


def test_assign_ring_moves_active_devices_and_refuses_the_others(alice, blade_tenant):
    client = signed_in(alice)
    response = client.post("/devices/actions/assign_ring/", {"ids": pks("ALPHA-01", "CHARLIE-05"), "ring": "test"})
    html = response.content.decode()
    assert "Assign ring: 1 of 2 done" in html
    assert "to Test" in html and "only registered, Active devices" in html
    alpha, charlie = Device.objects.get(device_name="ALPHA-01"), Device.objects.get(device_name="CHARLIE-05")
    assert (alpha.ring, alpha.ring_assigned_by) == ("test", "admin")
    assert charlie.ring_assigned_by == "autopatch"
    table = client.get("/devices/ready/?ring=test&columns=ring_assigned_by").content.decode()
    assert names_in(table) == ["ALPHA-01"]
    event = AuditEvent.objects.get(action=AuditEvent.Action.DEVICE_ACTION)
    assert event.actor == "alice" and event.result == "Assign ring: 1 of 2 done"
    assert [o["done"] for o in event.details["outcomes"]] == [True, False]


def test_a_ring_assigned_by_an_admin_survives_discovery(alice, blade_tenant):
    signed_in(alice).post("/devices/actions/assign_ring/", {"ids": pks("ALPHA-02"), "ring": "test"})
    discover_now()
    device = Device.objects.get(device_name="ALPHA-02")
    assert (device.ring, device.ring_assigned_by) == ("test", "admin")


def test_exclude_moves_devices_to_not_registered_and_discovery_keeps_them_there(alice, blade_tenant):
    client = signed_in(alice)
    html = client.post("/devices/actions/exclude/", {"ids": pks("ALPHA-03", "CHARLIE-05", "DELTA-06")}).content.decode()
    assert "Exclude device: 2 of 3 done" in html and "it is not registered" in html
    discover_now()
    excluded = client.get("/devices/not-registered/?status=excluded").content.decode()
    assert names_in(excluded) == ["ALPHA-03", "CHARLIE-05"]
    assert "ALPHA-03" not in names_in(client.get("/devices/ready/").content.decode())
    device = Device.objects.get(device_name="ALPHA-03")
    assert device.registered_at is None and device.ring == ""
    assert device.status_changes.first().cause == "Excluded by alice"


def test_restore_evaluates_the_device_again_at_once(alice, blade_tenant):
    client = signed_in(alice)
    client.post("/devices/actions/exclude/", {"ids": pks("ALPHA-03")})
    html = client.post("/devices/actions/restore/", {"ids": pks("ALPHA-03", "ALPHA-01")}).content.decode()
    assert "Restore excluded device: 1 of 2 done" in html and "it is not excluded" in html
    run = DiscoveryRun.objects.get(trigger="manual", requested_by="alice")
    assert f"discovery run #{run.pk}" in html
    run_discovery(run)  # what the worker does with the queued run
    assert "ALPHA-03" in names_in(client.get("/devices/ready/").content.decode())
    device = Device.objects.get(device_name="ALPHA-03")
    assert device.readiness_status == "active" and device.ring and not device.excluded


def test_a_reader_cannot_act_on_devices(bob, blade_tenant):
    client = signed_in(bob)
    assert client.get("/devices/actions/exclude/", {"ids": pks("ALPHA-01")}).status_code == 403
    assert client.post("/devices/actions/exclude/", {"ids": pks("ALPHA-01")}).status_code == 403
    assert client.post("/devices/actions/assign_ring/", {"ids": pks("ALPHA-01"), "ring": "test"}).status_code == 403
    assert not Device.objects.filter(excluded=True).exists() and not Device.objects.filter(ring="test").exists()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DEVICE_ACTION).exists()


def test_unknown_or_malformed_device_ids_are_refused_and_nothing_changes(alice, blade_tenant):
    client = signed_in(alice)
    for ids in ([*pks("ALPHA-01"), 999999], ["ALPHA-01"], []):
        response = client.post("/devices/actions/exclude/", {"ids": ids})
        assert response.status_code == 400
    assert "do not exist" in client.post("/devices/actions/exclude/", {"ids": [999999]}).content.decode()
    assert not Device.objects.filter(excluded=True).exists()


def test_an_unknown_ring_or_action_is_refused(alice, blade_tenant):
    client = signed_in(alice)
    assert client.post("/devices/actions/assign_ring/", {"ids": pks("ALPHA-01"), "ring": "gold"}).status_code == 400
    assert client.post("/devices/actions/delete/", {"ids": pks("ALPHA-01")}).status_code == 404
    assert not Device.objects.filter(ring_assigned_by="admin").exists()
