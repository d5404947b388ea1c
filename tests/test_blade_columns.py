"""The column chooser: each user's columns and order per tab, saved in the database; forged lists refused."""

from __future__ import annotations

import re

from accounts.models import AuditEvent
from devices.columns import COLUMNS
from devices.models import ColumnChoice, Device
from tests.portal_client import signed_in


def headers(html: str) -> list[str]:
    return re.findall(r'<th scope="col"[^>]*data-column="([a-z_]+)"', html)


def test_the_default_columns_come_first(alice, blade_tenant):
    html = signed_in(alice).get("/devices/ready/").content.decode()
    assert headers(html) == [
        "device_name",
        "serial_number",
        "ring",
        "readiness_status",
        "failed_checks",
        "last_intune_checkin",
    ]


def test_a_users_choice_and_order_is_saved_for_that_tab_only(alice, bob, blade_tenant):
    client = signed_in(alice)
    response = client.form_post(
        "/devices/not-ready/columns/", {"columns": ["model", "device_name", "os_version"]}
    )
    assert response.status_code == 302
    assert headers(client.get("/devices/not-ready/").content.decode()) == [
        "model",
        "device_name",
        "os_version",
    ]
    assert headers(client.get("/devices/ready/").content.decode())[0] == "device_name"
    assert headers(signed_in(bob).get("/devices/not-ready/").content.decode())[0] == "device_name"
    event = AuditEvent.objects.get(action=AuditEvent.Action.COLUMNS)
    # The log names the tab and the columns as the admin saw them, not their internal keys.
    assert (event.actor, event.target, event.result) == (
        "alice",
        "Not ready",
        "Model, Device name, OS version",
    )
    assert event.source_ip == "127.0.0.1"


def test_a_reader_may_choose_columns(bob, blade_tenant):
    client = signed_in(bob)
    client.form_post("/devices/ready/columns/", {"columns": ["primary_user", "device_name"]})
    assert headers(client.get("/devices/ready/").content.decode()) == ["primary_user", "device_name"]


def test_the_chooser_lists_the_saved_columns_first_in_their_order(alice, blade_tenant):
    client = signed_in(alice)
    client.form_post("/devices/ready/columns/", {"columns": ["owner", "device_name"]})
    html = client.get("/devices/ready/columns/", HTTP_HX_REQUEST="true").content.decode()
    keys = re.findall(r'name="columns" value="([a-z_]+)"( checked)?', html)
    assert keys[:2] == [("owner", " checked"), ("device_name", " checked")]
    assert all(not checked for _, checked in keys[2:]) and len(keys) == len(COLUMNS)


def test_reset_brings_back_the_default_columns(alice, blade_tenant):
    client = signed_in(alice)
    client.form_post("/devices/ready/columns/", {"columns": ["owner"]})
    client.form_post("/devices/ready/columns/", {"reset": "1"})
    assert headers(client.get("/devices/ready/").content.decode())[0] == "device_name"
    assert not ColumnChoice.objects.exists()


def test_a_forged_column_list_is_refused_and_changes_nothing(alice, blade_tenant):
    client = signed_in(alice)
    client.form_post("/devices/ready/columns/", {"columns": ["owner", "device_name"]})
    for forged in (["device_name", "fingerprint"], ["checks"], [], ["owner", "owner"]):
        response = client.form_post("/devices/ready/columns/", {"columns": forged})
        assert response.status_code == 400
    assert ColumnChoice.objects.get().columns == ["owner", "device_name"]


def test_saving_with_no_column_ticked_keeps_the_chooser_with_the_reason(alice, blade_tenant):
    client = signed_in(alice)
    order = ["model", "device_name", "serial_number"]
    response = client.htmx_post("/devices/ready/columns/", {"order": order})
    html = response.content.decode()
    assert response.status_code == 400
    assert "Choose at least one column." in html
    assert re.findall(r'name="columns" value="([a-z_]+)"', html)[:3] == order  # the order the admin left
    assert ">Save</button>" in html and ">Cancel</button>" in html
    assert not ColumnChoice.objects.exists()


def test_with_another_column_first_the_device_name_still_opens_the_details(alice, blade_tenant):
    client = signed_in(alice)
    client.form_post("/devices/not-registered/columns/", {"columns": ["ring", "device_name"]})
    html = client.get("/devices/not-registered/").content.decode()
    device = Device.objects.get(device_name="DELTA-06")
    assert device.ring == ""
    assert device.azure_ad_device_id not in html  # never shown in place of an empty ring
    assert re.search(
        r'<td data-column="ring"></td>\s*<td data-column="device_name"><a class="device-link"[^>]*>DELTA-06</a>',
        html,
    )
