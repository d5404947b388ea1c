"""The rule preview: the page (Administrators and Readers), its htmx partial, and `manage.py preview_rule`, all over
the portal's copy of the tenant that a real discovery run wrote from the simulated tenant."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from autopatch_portal.tenant.membership_rules import SEED_HOST_POOL_RULE
from autopatch_portal.tenant.simulated.generator import add_virtual_desktops
from devices.runs import discover_now

from .conftest import REPO
from .portal_client import signed_in

pytestmark = pytest.mark.django_db

URL = reverse("devices:rule_preview")


@pytest.fixture
def host_pool(builder, use_tenant):
    """The seed's Azure Virtual Desktop case, a laptop and a Home edition PC whose names contain "ap"."""
    add_virtual_desktops(builder)
    builder.device("FIN-LT-000001")
    builder.device("LAPTOP-HOME", member_of=None, sku_number=101)
    use_tenant(builder)
    discover_now()
    return builder


def preview_csv(rule: str) -> list[dict[str, str]]:
    out = io.StringIO()
    call_command("preview_rule", rule, stdout=out)
    return list(csv.DictReader(io.StringIO(out.getvalue().lstrip("\ufeff"))))


def test_the_command_lists_each_matching_device_and_whether_it_would_register(host_pool):
    rows = preview_csv(SEED_HOST_POOL_RULE)

    by_name = {row["Device name"]: row for row in rows}
    assert sorted(by_name) == [
        "AVD-AP-MS-001",
        "AVD-AP-MS-002",
        "AVD-AP-PD-001",
        "AVD-AP-PD-002",
        "LAPTOP-HOME",
    ]
    assert (
        by_name["AVD-AP-PD-001"]["Would register"] == "Yes"
        and by_name["AVD-AP-PD-001"]["Failed checks"] == ""
    )
    assert by_name["AVD-AP-MS-001"]["Would register"] == "No"
    assert by_name["AVD-AP-MS-001"]["Failed checks"] == "Windows edition"
    assert by_name["AVD-AP-MS-001"]["Multi-session host"] == "Yes"
    assert "multi-session" in by_name["AVD-AP-MS-001"]["Reasons"]
    assert by_name["LAPTOP-HOME"]["Failed checks"] == "Windows edition"
    assert by_name["LAPTOP-HOME"]["Multi-session host"] == "No"
    laptop = next(d for d in host_pool.devices if d["displayName"] == "LAPTOP-HOME")
    assert by_name["LAPTOP-HOME"]["Azure AD device ID"] == laptop["deviceId"]


def test_the_windows_10_multi_session_host_is_matched_once_the_rule_stops_excluding_it(host_pool):
    rows = preview_csv('device.displayName -startsWith "avd-ap-ms"')

    assert [row["Device name"] for row in rows] == ["AVD-AP-MS-001", "AVD-AP-MS-002", "AVD-AP-MS-W10-01"]
    assert {row["Multi-session host"] for row in rows} == {"Yes"}


def test_a_malformed_rule_stops_the_command_with_the_position(host_pool):
    with pytest.raises(CommandError) as caught:
        call_command("preview_rule", '(device.displayName -contains "AP"', stdout=io.StringIO())

    message = str(caught.value)
    assert "(at character 35)" in message
    assert message.splitlines()[-1] == "  " + " " * 34 + "^"


def test_the_page_shows_matches_checks_and_calls_out_multi_session_hosts(host_pool, bob):
    response = signed_in(bob).get(URL, {"rule": SEED_HOST_POOL_RULE})

    page = response.content.decode()
    assert response.status_code == 200
    assert "<strong>5</strong> of" in page and "<strong>2</strong> would register" in page
    assert "Azure Virtual Desktop multi-session hosts" in page
    assert page.count('<span class="badge badge-bad">Multi-session host</span>') == 2
    assert "AVD-AP-MS-W10-01" not in page
    assert "FIN-LT-000001" not in page


def test_the_page_points_at_the_position_of_a_malformed_rule(host_pool, alice):
    response = signed_in(alice).get(URL, {"rule": 'device.displayName -eq "AP" -and device.colour -eq "red"'})

    page = response.content.decode()
    assert response.status_code == 400
    assert "&#x27;colour&#x27; is not a device property a rule can use" in page
    assert "(at character 41)" in page
    assert " " * 40 + "^</pre>" in page
    assert 'aria-invalid="true"' in page


def test_htmx_gets_the_results_alone_and_an_error_in_place(host_pool, alice):
    client = signed_in(alice)

    good = client.get(URL, {"rule": 'device.displayName -eq "avd-ap-pd-001"'}, headers={"HX-Request": "true"})
    bad = client.get(URL, {"rule": "device.displayName -eq"}, headers={"HX-Request": "true"})

    assert good.status_code == 200 and "<textarea" not in good.content.decode()
    assert "AVD-AP-PD-001" in good.content.decode()
    assert bad.status_code == 200 and "The rule cannot be read" in bad.content.decode()


def test_an_empty_page_asks_for_a_rule_and_offers_the_seeds_example(host_pool, bob):
    response = signed_in(bob).get(URL)

    page = response.content.decode()
    assert response.status_code == 200
    assert "<table" not in page
    assert '<a href="?rule=%28device.displayName+-contains+%22AP%22%29+-and+' in page


def test_the_command_exits_non_zero_with_the_position_on_stderr(tmp_path):
    done = subprocess.run(
        [sys.executable, "manage.py", "preview_rule", 'device.displayName -eq "AP" -or'],
        cwd=REPO,
        env={**os.environ, "AUTOPATCH_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 1
    assert done.stdout == ""
    assert "(at character 32)" in done.stderr
    assert done.stderr.rstrip().endswith(" " * 33 + "^")
