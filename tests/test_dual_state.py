"""The dual state report: a stale Azure AD registered record beside a hybrid joined one, on the page, as CSV and from
`manage.py export_dual_state`, all from one function."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command

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
