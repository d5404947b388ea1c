"""The rule preview in a real browser: a malformed rule points at its position, a good rule lists the devices it
matches with the multi-session hosts called out, both in place and with the rule in the URL."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from autopatch_portal.tenant.simulated.generator import add_virtual_desktops
from devices.runs import discover_now

pytestmark = pytest.mark.browser


@pytest.fixture
def host_pool(transactional_db, builder, use_tenant):
    add_virtual_desktops(builder)
    builder.device("FIN-LT-000001")
    use_tenant(builder)
    discover_now()
    return builder


def test_a_reader_previews_a_malformed_rule_then_a_good_one(sign_in, host_pool, bob):
    page = sign_in(bob)
    page.get_by_role("link", name="Rule preview").click()
    expect(page.get_by_role("heading", name="Dynamic membership rule preview")).to_be_visible()

    rule = page.get_by_label("Membership rule")
    rule.fill('(device.displayName -contains "AP"')
    page.get_by_role("button", name="Preview").click()

    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Expected ')' to close the '(' opened at character 1")
    expect(alert).to_contain_text("(at character 35)")
    expect(page.locator(".rule-pointer")).to_have_text(
        re.compile(r'\(device\.displayName -contains "AP"\n {34}\^')
    )
    expect(rule).to_have_accessible_description(re.compile(r"The rule cannot be read: Expected"))

    rule.fill('(device.displayName -contains "AP") -and (device.displayName -notStartsWith "CPC")')
    rule.press("Tab")
    page.keyboard.press("Enter")  # the Preview button, reached with the keyboard

    expect(page.get_by_role("alert")).to_have_count(0)
    table = page.locator("table.rule-preview tbody tr")
    expect(table).to_have_count(5)
    ids = {d["displayName"]: d["deviceId"] for d in host_pool.devices}
    hosts = ("AVD-AP-MS-001", "AVD-AP-MS-002", "AVD-AP-MS-W10-01")
    expect(table.locator("td:first-child")).to_have_text(
        [f"{name} Multi-session host{ids[name]}" for name in hosts]
        + [f"{name}{ids[name]}" for name in ("AVD-AP-PD-001", "AVD-AP-PD-002")]
    )
    expect(page.get_by_role("note")).to_contain_text("Azure Virtual Desktop multi-session hosts")
    expect(page.get_by_role("status")).to_contain_text("2 would register")
    expect(page).to_have_url(re.compile(r"rule=.*notStartsWith"))

    page.reload()  # the URL holds the rule: the same preview comes back
    expect(page.locator("table.rule-preview tbody tr")).to_have_count(5)
