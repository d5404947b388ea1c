"""The dual state report: a stale Azure AD registered record beside a hybrid joined one, on the page, as CSV and from
`manage.py export_dual_state`, all from one function."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import AuditEvent
from devices.models import Device
from devices.runs import discover_now

from .portal_client import signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def dual(builder, use_tenant):
    """HR-LT-001: hybrid joined and enrolled (outside the group), plus its stale Azure AD registered record in the
    group; OPS-LT-002: an ordinary device; ENG-DT-003: Azure AD registered only (no twin: not dual state)."""
    current = builder.device("HR-LT-001", member_of=None, trust_type="ServerAd")
    stale = builder.device("HR-LT-001", trust_type="Workplace", managed=False)
    builder.device("OPS-LT-002", report=True)
    builder.device("ENG-DT-003", trust_type="Workplace", managed=False)
    use_tenant(builder)
    discover_now()
    return current, stale


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))


def test_the_page_names_the_stale_record_and_what_to_delete(alice, dual):
    current, stale = dual
    html = signed_in(alice).get("/devices/dual-state/").content.decode()
    assert "Devices in dual state (1)" in html
    assert stale["deviceId"] in html and current["deviceId"] in html
    assert f"Delete the stale Azure AD registered record (device ID {stale['deviceId']})" in html
    assert "Until then it fails &#x27;Intune or Cloud-Attached&#x27;." in html
    assert "Add the hybrid joined record to the registration group." in html
    assert "ENG-DT-003" not in html and "OPS-LT-002" not in html
    # The stale record fails the check the seed names.
    assert (
        "Intune or Cloud-Attached" in Device.objects.get(azure_ad_device_id=stale["deviceId"]).failed_checks
    )


def test_the_registration_group_page_points_to_the_report(alice, dual):
    html = signed_in(alice).get("/devices/registration-group/").content.decode()
    assert "Stale records in dual state" in html and 'href="/devices/dual-state/"' in html


def test_the_export_and_the_command_give_the_same_csv(bob, dual):
    current, stale = dual
    response = signed_in(bob).get("/devices/dual-state/export.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    exported = b"".join(response.streaming_content).decode()
    out = io.StringIO()
    call_command("export_dual_state", stdout=out)
    assert out.getvalue() == exported
    (row,) = rows(exported)
    assert row["Device name"] == "HR-LT-001"
    assert row["Stale Azure AD device ID"] == stale["deviceId"]
    assert row["Current Azure AD device ID"] == current["deviceId"]
    assert row["Stale record in the registration group"] == "Yes"
    assert row["Current record in the registration group"] == "No"
    assert AuditEvent.objects.get(action="export").target == "Dual state"


def test_a_tenant_without_dual_state_says_so(alice, builder, use_tenant):
    builder.device("OPS-LT-002")
    use_tenant(builder)
    discover_now()
    assert "No device has both" in signed_in(alice).get("/devices/dual-state/").content.decode()
    out = io.StringIO()
    call_command("export_dual_state", stdout=out)
    assert rows(out.getvalue()) == [] and out.getvalue().startswith('\ufeff"Device name"')


def test_the_demo_tenant_shows_one_dual_state_pair(alice, settings):
    from autopatch_portal.tenant.connection import DEMO_TENANT_FILE

    settings.AUTOPATCH_TENANT_FILE = str(DEMO_TENANT_FILE)
    discover_now()
    html = signed_in(alice).get("/devices/dual-state/").content.decode()
    stale = Device.objects.get(device_name="OPS-DT-000133")
    assert "Devices in dual state (1)" in html
    assert f"Delete the stale Azure AD registered record (device ID {stale.azure_ad_device_id})" in html
    assert not stale.is_registered and stale.in_registration_group


@pytest.fixture
def many_pairs(builder, use_tenant):
    """55 devices in dual state: more than a page of the report."""
    pairs = []
    for i in range(55):
        name = f"HR-LT-{i:03d}"
        current = builder.device(name, member_of=None, trust_type="ServerAd")
        pairs.append((name, builder.device(name, trust_type="Workplace", managed=False), current))
    use_tenant(builder)
    discover_now()
    return pairs


def test_the_run_has_read_the_first_page_ahead(alice, many_pairs):
    """The run that ended read the pairs ahead for the report: the first view after it reads no record of the
    tenant copy."""
    with CaptureQueriesContext(connection) as queries:
        page = signed_in(alice).get("/devices/dual-state/").content.decode()
    assert "Devices in dual state (55)" in page and "HR-LT-049" in page
    assert not [q for q in queries.captured_queries if "devices_tenantobject" in q["sql"]]


def test_the_report_shows_fifty_pairs_a_page(alice, many_pairs, django_assert_max_num_queries):
    client = signed_in(alice)
    with django_assert_max_num_queries(12):  # as many for 50 rows as for one: no query per row
        first = client.get("/devices/dual-state/").content.decode()
    assert "Devices in dual state (55)" in first
    assert "1–50 of 55" in first and "Page 1 of 2" in first and 'href="?page=2" rel="next"' in first
    assert "HR-LT-049" in first and "HR-LT-050" not in first
    second = client.get("/devices/dual-state/?page=2").content.decode()
    assert "51–55 of 55" in second and 'href="?page=1" rel="prev"' in second
    assert "HR-LT-050" in second and "HR-LT-054" in second and "HR-LT-049" not in second
    # A page past the end (the list shrank since it was bookmarked) shows the last one.
    assert "51–55 of 55" in client.get("/devices/dual-state/?page=9").content.decode()
    for bad in ("0", "x", "²", "9" * 5000):
        response = client.get("/devices/dual-state/", {"page": bad})
        assert response.status_code == 400
        assert "There is no such page of the dual state report." in response.content.decode()


def test_the_report_reads_the_pairs_once_a_run_and_the_portal_state_every_time(
    alice, many_pairs, builder, use_tenant, django_assert_max_num_queries
):
    client = signed_in(alice)
    client.get("/devices/dual-state/")
    name, stale, _ = many_pairs[0]
    # What the portal knows changes without a run (an admin's exclusion): the page shows it at once.
    Device.objects.filter(azure_ad_device_id=stale["deviceId"]).update(
        readiness_status="excluded", excluded=True
    )
    html = client.get("/devices/dual-state/").content.decode()
    assert f'<td>{name}</td><td>{stale["deviceId"]}</td><td>Yes <span class="muted">(Excluded)</span>' in html
    # The tenant changes: the report follows once a run has read it.
    builder.device("OPS-DT-900", member_of=None, trust_type="ServerAd")
    builder.device("OPS-DT-900", trust_type="Workplace", managed=False)
    use_tenant(builder)
    assert "Devices in dual state (55)" in client.get("/devices/dual-state/").content.decode()
    discover_now()
    assert "Devices in dual state (56)" in client.get("/devices/dual-state/").content.decode()
