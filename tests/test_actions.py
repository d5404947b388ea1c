"""Device actions: Assign ring, Exclude device, Restore excluded device; administrators only, per-device outcomes, recorded."""

from __future__ import annotations

import re

import pytest
from django.db import DatabaseError, connection

from accounts.models import AuditEvent
from devices.discovery import run_discovery
from devices.models import Device, DiscoveryRun
from devices.runs import discover_now
from tests.portal_client import signed_in
from tests.portal_client import signed_in as portal_signed_in
from tests.test_blade_tabs import names_in


def pks(*names: str) -> list[int]:
    return [Device.objects.get(device_name=name).pk for name in names]


def test_the_confirmation_names_the_selected_devices(alice, blade_tenant):
    response = signed_in(alice).get("/devices/actions/exclude/", {"ids": pks("ALPHA-01", "CHARLIE-05")})
    html = response.content.decode()
    assert response.status_code == 200
    assert (
        "Exclude device" in html
        and "2 devices selected" in html
        and "ALPHA-01" in html
        and "CHARLIE-05" in html
    )
    assert Device.objects.filter(excluded=True).count() == 0  # asking changes nothing


def test_assign_ring_moves_active_devices_and_refuses_the_others(alice, blade_tenant):
    client = signed_in(alice)
    response = client.form_post(
        "/devices/actions/assign_ring/", {"ids": pks("ALPHA-01", "CHARLIE-05"), "ring": "test"}
    )
    html = response.content.decode()
    assert "Assign ring: 1 of 2 done" in html
    assert "to Test" in html and "only registered, Active devices" in html
    alpha, charlie = Device.objects.get(device_name="ALPHA-01"), Device.objects.get(device_name="CHARLIE-05")
    assert (alpha.ring, alpha.ring_assigned_by) == ("test", "admin")
    assert charlie.ring_assigned_by == "autopatch"
    table = client.get("/devices/ready/?ring=test&columns=ring_assigned_by").content.decode()
    assert names_in(table) == ["ALPHA-01"]
    event = AuditEvent.objects.get(action=AuditEvent.Action.DEVICE_ACTION)
    # The log names the devices and the ring as the admin chose them, and where the request came from.
    assert event.actor == "alice" and event.result == "Assign ring (Test): 1 of 2 done"
    assert event.target == "ALPHA-01, CHARLIE-05" and event.source_ip == "127.0.0.1"
    assert [o["done"] for o in event.details["outcomes"]] == [True, False]
    assert event.details["outcomes"][0]["azure_ad_device_id"] == alpha.azure_ad_device_id


def test_a_ring_assigned_by_an_admin_survives_discovery(alice, blade_tenant):
    signed_in(alice).form_post("/devices/actions/assign_ring/", {"ids": pks("ALPHA-02"), "ring": "test"})
    discover_now()
    device = Device.objects.get(device_name="ALPHA-02")
    assert (device.ring, device.ring_assigned_by) == ("test", "admin")


def test_exclude_moves_devices_to_not_registered_and_discovery_keeps_them_there(alice, blade_tenant):
    client = signed_in(alice)
    html = client.form_post(
        "/devices/actions/exclude/", {"ids": pks("ALPHA-03", "CHARLIE-05", "DELTA-06")}
    ).content.decode()
    assert "Exclude device: 2 of 3 done" in html and "it is not registered" in html
    discover_now()
    excluded = client.get("/devices/not-registered/?status=excluded").content.decode()
    assert names_in(excluded) == ["ALPHA-03", "CHARLIE-05"]
    assert "ALPHA-03" not in names_in(client.get("/devices/ready/").content.decode())
    device = Device.objects.get(device_name="ALPHA-03")
    assert device.registered_at is None and device.ring == ""
    assert device.status_changes.first().cause.startswith("Excluded by alice (ring ")


def test_restore_evaluates_the_device_again_at_once(alice, blade_tenant):
    client = signed_in(alice)
    client.form_post("/devices/actions/exclude/", {"ids": pks("ALPHA-03")})
    html = client.form_post(
        "/devices/actions/restore/", {"ids": pks("ALPHA-03", "ALPHA-01")}
    ).content.decode()
    assert "Restore excluded device: 1 of 2 done" in html and "it is not excluded" in html
    run = DiscoveryRun.objects.get(trigger="manual", requested_by="alice")
    assert f"discovery run #{run.pk}" in html
    run_discovery(run)  # what the worker does with the queued run
    assert "ALPHA-03" in names_in(client.get("/devices/ready/").content.decode())
    device = Device.objects.get(device_name="ALPHA-03")
    assert device.readiness_status == "active" and device.ring and not device.excluded


# The audit log refuses new entries, as a database that cannot write them would: a constraint no row meets (not
# checked against the rows already there) on PostgreSQL, a trigger on SQLite. Both go with the test's transaction.
REFUSE_AUDIT_ENTRIES = {
    "postgresql": "ALTER TABLE accounts_auditevent ADD CONSTRAINT refused CHECK (false) NOT VALID",
    "sqlite": "CREATE TEMP TRIGGER refused BEFORE INSERT ON accounts_auditevent BEGIN SELECT RAISE(ABORT, 'refused'); END",
}


def test_an_action_whose_audit_entry_cannot_be_written_changes_nothing(alice, blade_tenant):
    """The action and its audit entry commit together: when the entry cannot be written, the devices stay as they
    were (recorded after the action, a refused entry left the devices changed and the log silent)."""
    client = signed_in(alice)
    ids = pks("ALPHA-03")
    with connection.cursor() as cursor:
        cursor.execute(REFUSE_AUDIT_ENTRIES[connection.vendor])
    with pytest.raises(DatabaseError, match="refused"):
        client.form_post("/devices/actions/exclude/", {"ids": ids})
    device = Device.objects.get(device_name="ALPHA-03")
    assert (device.excluded, device.readiness_status) == (False, "active")
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DEVICE_ACTION).exists()


def test_a_reader_cannot_act_on_devices(bob, blade_tenant):
    client = signed_in(bob)
    assert client.get("/devices/actions/exclude/", {"ids": pks("ALPHA-01")}).status_code == 403
    assert client.form_post("/devices/actions/exclude/", {"ids": pks("ALPHA-01")}).status_code == 403
    assert (
        client.form_post(
            "/devices/actions/assign_ring/", {"ids": pks("ALPHA-01"), "ring": "test"}
        ).status_code
        == 403
    )
    assert (
        not Device.objects.filter(excluded=True).exists() and not Device.objects.filter(ring="test").exists()
    )
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.DEVICE_ACTION).exists()


def test_unknown_or_malformed_device_ids_are_refused_and_nothing_changes(alice, blade_tenant):
    client = signed_in(alice)
    for ids in ([*pks("ALPHA-01"), 999999], ["ALPHA-01"], []):
        response = client.form_post("/devices/actions/exclude/", {"ids": ids})
        assert response.status_code == 400
    assert "do not exist" in client.form_post("/devices/actions/exclude/", {"ids": [999999]}).content.decode()
    assert not Device.objects.filter(excluded=True).exists()


def test_an_unknown_ring_or_action_is_refused(alice, blade_tenant):
    client = signed_in(alice)
    assert (
        client.form_post(
            "/devices/actions/assign_ring/", {"ids": pks("ALPHA-01"), "ring": "gold"}
        ).status_code
        == 400
    )
    assert client.form_post("/devices/actions/delete/", {"ids": pks("ALPHA-01")}).status_code == 404
    assert not Device.objects.filter(ring_assigned_by="admin").exists()


def test_restore_shows_the_run_it_started_and_follows_it(alice, blade_tenant):
    client = portal_signed_in(alice)
    client.htmx_post("/devices/actions/exclude/", {"ids": pks("ALPHA-03")})
    html = client.htmx_post("/devices/actions/restore/", {"ids": pks("ALPHA-03")}).content.decode()
    run = DiscoveryRun.objects.get(trigger="manual", requested_by="alice")
    # Out of band into the blade's run status, polling the run as Discover devices does.
    assert '<div id="discover-status" hx-swap-oob="innerHTML">' in html
    assert f'hx-get="/devices/discover/{run.pk}/" hx-trigger="every 1s"' in html


def test_a_thousand_devices_and_a_ring_can_be_posted(alice, blade_tenant):
    ids = (
        pks("ALPHA-01") * 1000
    )  # the confirmation sends them as one field: within Django's 1,000-field limit
    response = portal_signed_in(alice).htmx_post(
        "/devices/actions/assign_ring/", {"ids": ",".join(map(str, ids)), "ring": "fast"}
    )
    assert response.status_code == 200 and "Assign ring (Fast)" not in response.content.decode()
    assert Device.objects.get(device_name="ALPHA-01").ring == "fast"


def test_more_than_a_thousand_devices_get_the_portals_own_message(alice, blade_tenant):
    client, pk = portal_signed_in(alice), str(pks("ALPHA-01")[0])
    # The confirmation (GET, one field per ticked box) and the action (POST, one field with every ID).
    for response in (
        client.get("/devices/actions/exclude/", {"ids": [pk] * 1001}, headers={"HX-Request": "true"}),
        client.htmx_post("/devices/actions/exclude/", {"ids": ",".join([pk] * 1001)}),
    ):
        assert response.status_code == 400
        assert "Select at most 1000 devices at a time." in response.content.decode()
    assert not Device.objects.filter(excluded=True).exists()


def test_a_form_with_more_fields_than_django_reads_gets_the_portals_own_page(alice, blade_tenant):
    # 1,001 separate `ids` fields: refused before the view (while the CSRF check reads the form).
    client, pk = portal_signed_in(alice), str(pks("ALPHA-01")[0])
    for htmx in ({}, {"HX-Request": "true"}):
        headers = {"X-CSRFToken": client.csrf_token(), **htmx}
        response = client.post("/devices/actions/exclude/", {"ids": [pk] * 1001}, headers=headers)
        html = response.content.decode()
        assert response.status_code == 400
        assert (
            "Request refused:" in html and "more than 1000 fields" in html and "Nothing was changed." in html
        )
        assert ("<html" in html) is not bool(htmx)  # a page of its own, or the message the blade swaps in
    assert not Device.objects.filter(excluded=True).exists()


def test_device_ids_beyond_a_database_integer_are_refused(alice, blade_tenant):
    for pk in (2**63, 2**64, -1, "9" * 5000):
        response = portal_signed_in(alice).htmx_post("/devices/actions/exclude/", {"ids": [pk]})
        assert response.status_code == 400 and "not valid" in response.content.decode()


def test_the_ring_is_chosen_by_the_admin_never_preselected(alice, blade_tenant):
    html = signed_in(alice).get("/devices/actions/assign_ring/", {"ids": pks("ALPHA-01")}).content.decode()
    assert '<option value="" selected disabled>Choose a ring</option>' in html
    assert not re.search(r'<option value="(test|first|fast|broad)"[^>]* selected', html)


@pytest.mark.parametrize(
    "tab, offered",
    [
        ("ready", ["assign_ring", "exclude"]),
        ("not-ready", ["exclude"]),
        ("not-registered", ["restore"]),
    ],
)
def test_each_tab_offers_only_the_actions_that_can_work_there(alice, blade_tenant, tab, offered):
    html = signed_in(alice).get(f"/devices/{tab}/").content.decode()
    assert re.findall(r'data-action="([a-z_]+)"', html) == offered


def test_a_reader_gets_no_checkboxes(bob, blade_tenant):
    html = signed_in(bob).get("/devices/ready/").content.decode()
    assert "row-select" not in html and "data-select-all" not in html


def test_an_action_can_take_every_device_the_filters_match_across_pages(alice, blade_tenant):
    client = portal_signed_in(alice)
    html = client.get("/devices/ready/?q=ALPHA&per_page=2").content.decode()
    assert 'name="matching" value="tab=ready&amp;q=ALPHA" disabled' in html
    assert "Select all 3 matching devices" in html
    confirm = client.get("/devices/actions/exclude/", {"matching": "tab=ready&q=ALPHA"}).content.decode()
    assert "3 devices selected" in confirm
    ids = re.search(r'name="ids" value="([0-9,]+)"', confirm).group(1)
    client.htmx_post("/devices/actions/exclude/", {"ids": ids})
    assert sorted(Device.objects.filter(excluded=True).values_list("device_name", flat=True)) == [
        "ALPHA-01",
        "ALPHA-02",
        "ALPHA-03",
    ]


def test_more_matching_devices_than_an_action_takes_are_refused_and_the_limit_said(alice, blade_tenant):
    Device.objects.bulk_create(
        Device(azure_ad_device_id=f"bulk-{n}", device_name=f"BULK-{n:04d}", readiness_status="active")
        for n in range(1000)
    )
    client = portal_signed_in(alice)
    assert (
        "1004 devices match; an action takes at most 1000 at a time"
        in client.get("/devices/ready/").content.decode()
    )
    response = client.get("/devices/actions/exclude/", {"matching": "tab=ready"})
    assert response.status_code == 400 and "More than 1000 devices match" in response.content.decode()
    forged = portal_signed_in(alice).get("/devices/actions/exclude/", {"matching": "tab=secret&q=ALPHA"})
    assert forged.status_code == 400 and "not valid" in forged.content.decode()
