"""The audit log page: Service Administrators view, filter and export it; nobody edits it."""

from __future__ import annotations

import csv
import io
import json

import pytest

from accounts.audit import record_event
from accounts.models import AuditEvent, AuditLogIsAppendOnly

from .portal_client import signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def events(db):
    record_event("dana", AuditEvent.Action.EXPORT, target="ready", result="12 rows")
    record_event(
        "erin", AuditEvent.Action.DEVICE_ACTION, target="0b6f-1", result="Exclude device: 1 of 1 done"
    )
    record_event(None, AuditEvent.Action.DISCOVERY, target="run #7", result="succeeded")


def test_an_administrator_sees_every_event_newest_first(alice, events):
    page = signed_in(alice).get("/accounts/audit/")
    html = page.content.decode()
    assert page.status_code == 200
    assert html.index("run #7") < html.index("0b6f-1") < html.index("12 rows")
    assert "schedule" in html and "Sign-in" in html  # alice's own sign-in is there too


def test_it_filters_by_who_and_what(alice, events):
    html = (
        signed_in(alice)
        .get("/accounts/audit/", {"actor": "erin", "action": "device_action"})
        .content.decode()
    )
    assert "0b6f-1" in html and "12 rows" not in html and "run #7" not in html


def test_it_filters_by_date(alice, events):
    html = (
        signed_in(alice)
        .get("/accounts/audit/", {"since": "2001-01-01", "until": "2001-01-02"})
        .content.decode()
    )
    assert "No event matches these filters." in html


@pytest.mark.parametrize(
    "params",
    [
        {"action": "drop_table"},
        {"since": "yesterday"},
        {"page": "999"},
        {"since": "2030-01-02", "until": "2030-01-01"},
        {"page": "²"},
        {"page": "9" * 5000},
        {"actor": "a\x00b"},
    ],
)
def test_bad_filters_get_a_clear_400(alice, events, params):
    response = signed_in(alice).get("/accounts/audit/", params)
    assert response.status_code == 400 and "Request refused" in response.content.decode()


def test_it_exports_the_filtered_events_as_csv_and_records_the_export(alice, events):
    response = signed_in(alice).get("/accounts/audit/export.csv", {"actor": "dana"})
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0] == '\ufeff"When (UTC)","Who","What","Target","Result","Source IP","Details"'
    assert len(lines) == 2 and '"dana","Export to CSV","ready","12 rows"' in lines[1]
    recorded = AuditEvent.objects.get(action="export", target="audit log")
    assert (recorded.actor, recorded.result) == ("alice", "1 events")


def test_the_export_keeps_spreadsheet_formulas_as_text(alice):
    record_event(
        '=HYPERLINK("http://evil")', AuditEvent.Action.SIGN_IN_FAILED, result="wrong name or password"
    )
    text = b"".join(signed_in(alice).get("/accounts/audit/export.csv").streaming_content).decode()
    assert "'=HYPERLINK" in text


@pytest.mark.parametrize("path", ["/accounts/audit/", "/accounts/audit/export.csv"])
def test_a_reader_is_refused(bob, events, path):
    response = signed_in(bob).get(path)
    assert response.status_code == 403 and "Only Service Administrators" in response.content.decode()
    assert "0b6f-1" not in response.content.decode()


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_nobody_can_change_it_through_the_portal(alice, events, method):
    client = signed_in(alice)
    response = getattr(client, method)("/accounts/audit/", headers={"X-CSRFToken": client.csrf_token()})
    assert response.status_code == 405
    assert AuditEvent.objects.filter(actor="erin").count() == 1


def test_events_cannot_be_changed_or_deleted_even_in_code(events):
    event = AuditEvent.objects.get(actor="erin")
    event.result = "nothing happened"
    with pytest.raises(AuditLogIsAppendOnly):
        event.save()
    with pytest.raises(AuditLogIsAppendOnly):
        event.delete()


def test_administrators_find_it_in_the_navigation(alice, bob):
    assert 'href="/accounts/audit/"' in signed_in(alice).get("/devices/ready/").content.decode()
    assert 'href="/accounts/audit/"' not in signed_in(bob).get("/devices/ready/").content.decode()


def test_a_scheduled_discovery_is_recorded_as_the_schedule(builder, use_tenant):
    from devices.tasks import discover

    builder.device()
    use_tenant(builder)
    discover(trigger="schedule")
    event = AuditEvent.objects.get(action="discovery")
    assert (event.actor, event.result) == ("schedule", "succeeded")


def test_the_last_day_there_is_is_a_valid_end(alice, events):
    client = signed_in(alice)
    assert "run #7" in client.get("/accounts/audit/", {"until": "9999-12-31"}).content.decode()
    response = client.get("/accounts/audit/export.csv", {"until": "9999-12-31", "since": "0001-01-01"})
    assert response.status_code == 200 and "run #7" in b"".join(response.streaming_content).decode()


def test_the_export_writes_details_as_json(alice):
    record_event(
        "erin",
        AuditEvent.Action.DEVICE_ACTION,
        target="PC-1",
        result="Assign ring (Fast): 1 of 1 done",
        ring="fast",
        outcomes=[{"device": "PC-1", "done": True}],
    )
    text = b"".join(
        signed_in(alice).get("/accounts/audit/export.csv", {"actor": "erin"}).streaming_content
    ).decode()
    details = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))[1][6]
    assert json.loads(details) == {"ring": "fast", "outcomes": [{"device": "PC-1", "done": True}]}


def test_the_filter_is_a_button_that_looks_like_one(alice):
    html = signed_in(alice).get("/accounts/audit/").content.decode()
    assert '<button type="submit" class="primary-button filter-button">Filter</button>' in html
