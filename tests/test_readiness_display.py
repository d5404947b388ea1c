"""Honest readiness display: no report says so, an old report is stale, and the blade filters and exports it."""

from __future__ import annotations

import re

import pytest

from devices.models import Device, ReadinessStatus
from devices.runs import discover_now

from .portal_client import signed_in
from .test_export_csv import rows_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def reports_of_every_age(builder, use_tenant):
    builder.device("FRESH-01", report=True, report_age_hours=6)
    builder.device("STALE-02", report=True, report_age_hours=24 * 8)
    builder.device("SILENT-03")  # registered, but its readiness script never reported
    use_tenant(builder)
    discover_now()
    return {d.device_name: d for d in Device.objects.all()}


def flyin(client, device: Device) -> str:
    return client.get(f"/devices/device/{device.pk}/", HTTP_HX_REQUEST="true").content.decode()


def readiness_section(html: str) -> str:
    return html.split('id="details-readiness"', 1)[1].split('id="details-history"', 1)[0]


def test_a_device_without_a_report_stays_active_and_says_readiness_was_not_reported(
    alice, reports_of_every_age
):
    silent = reports_of_every_age["SILENT-03"]

    section = readiness_section(flyin(signed_in(alice), silent))

    assert silent.readiness_status == ReadinessStatus.ACTIVE
    assert "Readiness not reported yet" in section
    assert "No checks recorded" not in section and "check-pass" not in section
    assert silent.status_changes.get().cause.endswith("readiness not reported yet")


def test_a_report_older_than_seven_days_is_marked_stale_in_the_fly_in(alice, reports_of_every_age):
    client = signed_in(alice)

    stale = readiness_section(flyin(client, reports_of_every_age["STALE-02"]))
    fresh = readiness_section(flyin(client, reports_of_every_age["FRESH-01"]))

    assert "Stale" in stale and "older than 7 days" in stale
    assert stale.count('class="check-pass"') == 8
    assert "Stale" not in fresh and fresh.count('class="check-pass"') == 8


@pytest.mark.parametrize(
    ("freshness", "names"),
    [("none", ["SILENT-03"]), ("stale", ["STALE-02"]), ("fresh", ["FRESH-01"])],
)
def test_the_blade_filters_on_report_freshness(alice, reports_of_every_age, freshness, names):
    html = signed_in(alice).get(f"/devices/ready/?report={freshness}").content.decode()

    shown = sorted(set(re.findall(r"(?:FRESH-01|STALE-02|SILENT-03)", html.split("<tbody", 1)[1])))
    assert shown == names
    assert f'<option value="{freshness}" selected>' in html


def test_a_forged_freshness_is_refused(alice, reports_of_every_age):
    response = signed_in(alice).get("/devices/ready/?report=ancient")

    assert response.status_code == 400
    assert "readiness report &#x27;ancient&#x27; is not one of the choices" in response.content.decode()


def test_the_export_shows_the_report_time_stale_mark_or_its_absence(alice, reports_of_every_age):
    rows = rows_of(
        signed_in(alice).get(
            "/devices/ready/export.csv?columns=device_name,report_generated_at&sort=device_name"
        )
    )

    assert rows[0] == ["Device name", "Readiness report"]
    by_name = dict(rows[1:])
    assert by_name["SILENT-03"] == "Readiness not reported yet"
    assert by_name["STALE-02"].endswith(" UTC (stale)")
    stale_time = reports_of_every_age["STALE-02"].report_generated_at
    assert by_name["STALE-02"].startswith(f"{stale_time:%Y-%m-%d %H:%M:%S}")
    assert by_name["FRESH-01"].endswith(" UTC") and "stale" not in by_name["FRESH-01"]


def test_the_export_command_filters_on_freshness(reports_of_every_age, capsys):
    from django.core.management import call_command

    call_command("export_devices", "--tab", "ready", "--report", "none")

    out = capsys.readouterr().out
    assert "SILENT-03" in out and "FRESH-01" not in out and "STALE-02" not in out
