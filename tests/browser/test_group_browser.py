"""The registration group page in a real browser: its sections, a bulk add with a bad row, then a good one."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from devices.group_members import TEMPLATE_HEADING

pytestmark = pytest.mark.browser


def test_the_group_page_refuses_a_file_with_a_bad_row_then_adds_a_good_one(
    sign_in, live_tenant, use_tenant, alice, tmp_path
):
    spare = live_tenant.device("SPARE-01", member_of=None)
    tenant = use_tenant(live_tenant)

    page = sign_in(alice)
    page.get_by_role("link", name="Registration group").click()
    expect(page).to_have_url(re.compile(r"/devices/registration-group/$"))
    expect(page.get_by_role("heading", name="Windows Autopatch Device Registration")).to_be_visible()
    expect(page.get_by_role("heading", name="Group health")).to_be_visible()
    expect(page.get_by_role("heading", name=re.compile(r"^Direct device members \(7\)"))).to_be_visible()

    bad = tmp_path / "bad.csv"
    bad.write_text(f"{TEMPLATE_HEADING}\n{spare['id']}\nSPARE-01\n", encoding="utf-8")
    page.set_input_files("#add-file", str(bad))
    page.get_by_role("button", name="Upload and add").click()
    expect(page.locator("#add-error")).to_contain_text("row 3: 'SPARE-01' is not an object ID or device ID")
    assert spare["id"] not in tenant.groups[tenant.registration_group_id]["members"]

    good = tmp_path / "good.csv"
    good.write_text(f"{TEMPLATE_HEADING}\n{spare['id']}\n", encoding="utf-8")
    page.set_input_files("#add-file", str(good))
    page.get_by_role("button", name="Upload and add").click()
    expect(page.locator("#add-summary")).to_contain_text("1 added")
    expect(page.locator("#add-results")).to_contain_text("SPARE-01")
    assert spare["id"] in tenant.groups[tenant.registration_group_id]["members"]


def test_a_reader_sees_the_group_without_the_add_form(sign_in, live_tenant, bob):
    page = sign_in(bob)
    page.goto(page.url.replace("/devices/ready/", "/devices/registration-group/"))
    expect(page.get_by_role("heading", name="Group health")).to_be_visible()
    expect(page.get_by_role("button", name="Upload and add")).to_have_count(0)
    expect(page.get_by_text("Service Administrators add devices here.")).to_be_visible()
