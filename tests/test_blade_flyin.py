"""The fly-in has its own URL and offers the device's actions; pages are never cached, refusals log one line, pages name their icon."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

from accounts.models import AuditEvent
from devices.models import Device
from tests.portal_client import signed_in


def test_a_blade_url_with_a_device_opens_its_details(alice, blade_tenant):
    device = Device.objects.get(device_name="CHARLIE-05")
    html = signed_in(alice).get("/devices/not-ready/", {"device": device.pk}).content.decode()
    assert '<aside id="flyin" class="flyin" aria-label="Device details">' in html  # not hidden
    assert '<h2 id="flyin-title" tabindex="-1">CHARLIE-05</h2>' in html
    assert "No route to the internet from the device." in html


@pytest.mark.parametrize("value", ["", "abc", "999999", "9" * 40])
def test_a_device_that_is_not_there_opens_nothing(alice, blade_tenant, value):
    response = signed_in(alice).get("/devices/ready/", {"device": value})
    assert response.status_code == 200
    assert '<aside id="flyin" class="flyin" aria-label="Device details" hidden>' in response.content.decode()


def test_each_device_link_pushes_the_blade_url_with_the_device(alice, blade_tenant):
    device = Device.objects.get(device_name="ALPHA-02")
    html = signed_in(alice).get("/devices/ready/?q=ALPHA&sort=-device_name").content.decode()
    url = f"/devices/ready/?q=ALPHA&amp;sort=-device_name&amp;device={device.pk}"
    assert f'<a class="device-link" href="{url}" hx-get="/devices/device/{device.pk}/"' in html
    assert f'hx-push-url="{url}"' in html


@pytest.mark.parametrize(
    "name, offered", [("ALPHA-01", ["assign_ring", "exclude"]), ("CHARLIE-05", ["exclude"]), ("DELTA-06", [])]
)
def test_the_fly_in_offers_the_actions_that_can_work_on_the_device(alice, blade_tenant, name, offered):
    pk = Device.objects.get(device_name=name).pk
    html = signed_in(alice).get(f"/devices/device/{pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert re.findall(r'data-flyin-action="([a-z_]+)"', html) == offered
    for key in offered:
        assert f'hx-get="/devices/actions/{key}/?ids={pk}" hx-target="#dialog-body"' in html


def test_a_reader_gets_no_actions_in_the_fly_in(bob, blade_tenant):
    pk = Device.objects.get(device_name="ALPHA-01").pk
    assert (
        "data-flyin-action"
        not in signed_in(bob).get(f"/devices/device/{pk}/", HTTP_HX_REQUEST="true").content.decode()
    )


def test_signed_in_pages_and_exports_are_never_cached(alice, blade_tenant):
    client = signed_in(alice)
    pk = Device.objects.get(device_name="ALPHA-01").pk
    for path in (
        "/devices/ready/",
        f"/devices/device/{pk}/",
        "/devices/ready/columns/",
        "/devices/ready/export.csv",
        f"/devices/actions/exclude/?ids={pk}",
        "/accounts/audit/",
        "/accounts/audit/export.csv",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "no-store" in response["Cache-Control"], path
        if response.streaming:
            b"".join(response.streaming_content)
    assert AuditEvent.objects.filter(action=AuditEvent.Action.EXPORT).count() == 2


def test_a_refused_request_logs_one_line_without_a_traceback(bob, blade_tenant, caplog):
    with caplog.at_level("INFO"):
        response = signed_in(bob).get("/devices/actions/exclude/", {"ids": "1"})
    assert (
        response.status_code == 403
        and "Your role does not allow: device actions." in response.content.decode()
    )
    logged = [r for r in caplog.records if r.name == "django.request"]
    assert [(r.levelname, r.getMessage()) for r in logged] == [
        ("WARNING", "Forbidden: /devices/actions/exclude/")
    ]
    assert all(r.exc_info is None for r in caplog.records)


def test_every_page_names_its_icon(alice, blade_tenant):
    for html in (
        signed_in(alice).get("/devices/ready/").content.decode(),
        Client().get("/accounts/login/").content.decode(),
    ):
        assert '<link rel="icon" href="/static/portal/favicon.svg" type="image/svg+xml">' in html
    assert (
        (Path(__file__).resolve().parent.parent / "static/portal/favicon.svg").read_text().startswith("<svg")
    )
