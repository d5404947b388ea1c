"""Discover devices from the blade: starts the discovery task, says so when one is under way, reports the outcome."""

from __future__ import annotations

from accounts.models import AuditEvent
from devices.discovery import run_discovery
from devices.models import DiscoveryRun
from tests.portal_client import signed_in


def test_discover_devices_queues_a_run_and_polls_it(alice, blade_tenant):
    response = signed_in(alice).htmx_post("/devices/discover/")
    run = DiscoveryRun.objects.get(trigger="manual")
    html = response.content.decode()
    assert f"Discovery run #{run.pk} started." in html
    assert f'hx-get="/devices/discover/{run.pk}/" hx-trigger="every 1s"' in html
    assert run.requested_by == "alice" and run.status == "queued"
    event = AuditEvent.objects.get(action=AuditEvent.Action.DISCOVERY)
    assert (event.actor, event.result) == ("alice", "started")


def test_a_second_press_while_a_run_is_going_says_so(alice, blade_tenant):
    client = signed_in(alice)
    client.htmx_post("/devices/discover/")
    html = client.htmx_post("/devices/discover/").content.decode()
    assert "is already under way" in html
    assert DiscoveryRun.objects.filter(trigger="manual").count() == 1


def test_the_finished_run_shows_its_outcome_and_refreshes_the_blade(alice, blade_tenant):
    client = signed_in(alice)
    client.htmx_post("/devices/discover/")
    run = run_discovery(DiscoveryRun.objects.get(trigger="manual"))
    response = client.get(f"/devices/discover/{run.pk}/", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert f"Discovery run #{run.pk} succeeded" in html and "every 1s" not in html
    assert "devicesChanged" in response["HX-Trigger"]


def test_a_run_whose_worker_died_is_not_polled_and_does_not_block_a_new_one(alice, blade_tenant):
    from datetime import timedelta

    from django.utils import timezone

    from devices.models import DiscoveryLease

    dead = DiscoveryRun.objects.create(
        trigger="schedule",
        status=DiscoveryRun.Status.RUNNING,
        started_at=timezone.now() - timedelta(minutes=20),
    )
    DiscoveryLease.objects.update_or_create(
        name="discovery", defaults={"holder": dead, "expires_at": timezone.now() - timedelta(minutes=5)}
    )
    client = signed_in(alice)
    assert (
        "every 1s" not in client.get(f"/devices/discover/{dead.pk}/", HTTP_HX_REQUEST="true").content.decode()
    )
    assert "A discovery run is under way" not in client.get("/devices/ready/").content.decode()
    html = client.htmx_post("/devices/discover/").content.decode()
    assert "started." in html and "already under way" not in html


def test_a_reader_cannot_start_discovery(bob, blade_tenant):
    assert signed_in(bob).form_post("/devices/discover/").status_code == 403
    assert not DiscoveryRun.objects.filter(trigger="manual").exists()


def test_the_fly_in_shows_every_field_check_report_time_and_history(alice, blade_tenant):
    from devices.models import Device

    device = Device.objects.get(device_name="CHARLIE-05")
    html = signed_in(alice).get(f"/devices/device/{device.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "Azure AD device ID" in html and device.azure_ad_device_id in html and device.serial_number in html
    assert "Internet connectivity" in html and "No route to the internet from the device." in html
    assert "Make sure the device can reach the internet." in html  # remediation
    assert device.report_generated_at.strftime("%Y-%m-%d %H:%M") in html
    assert "Readiness failed</strong>" in html  # the status history
    assert signed_in(alice).get("/devices/device/999999/").status_code == 404
