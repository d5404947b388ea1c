"""The device blade in a real browser: tabs, Discover devices with a real worker, columns, export, actions, fly-in."""

from __future__ import annotations

import csv
import io
import re

import pytest
from playwright.sync_api import expect

from devices.models import Device
from tests.blade_tenant import NOT_READY, READY

pytestmark = pytest.mark.browser


def row_names(page) -> list[str]:
    return page.locator("#blade-main tbody .device-link").all_inner_texts()


def test_the_three_tabs_switch_in_place_with_their_own_urls(sign_in, live_tenant, alice):
    page = sign_in(alice)
    assert sorted(row_names(page)) == sorted(READY)
    page.get_by_role("link", name=re.compile(r"^Not ready")).click()
    expect(page).to_have_url(re.compile(r"/devices/not-ready/$"))
    expect(page.locator("#blade-main tbody .device-link")).to_have_text(list(NOT_READY))
    page.get_by_role("link", name=re.compile(r"^Not registered")).click()
    expect(page).to_have_url(re.compile(r"/devices/not-registered/$"))
    expect(page.locator("#blade-main tbody .device-link")).to_have_count(2)
    page.go_back()
    expect(page).to_have_url(re.compile(r"/devices/not-ready/$"))
    expect(page.locator("#blade-main tbody .device-link")).to_have_text(list(NOT_READY))


def test_search_and_sort_update_the_table_and_the_url(sign_in, live_tenant, alice):
    page = sign_in(alice)
    page.fill("#device-search", "ALPHA")
    expect(page).to_have_url(re.compile(r"q=ALPHA"))
    expect(page.locator("#blade-main tbody .device-link")).to_have_text(["ALPHA-01", "ALPHA-02", "ALPHA-03"])
    page.locator("th[data-column=device_name] a").click()
    expect(page).to_have_url(re.compile(r"sort=-device_name"))
    expect(page.locator("#blade-main tbody .device-link")).to_have_text(["ALPHA-03", "ALPHA-02", "ALPHA-01"])


def test_discover_devices_runs_on_the_worker_and_refreshes_the_blade(
    sign_in, live_tenant, alice, builder, use_tenant, celery_worker_process
):
    builder.device("FOXTROT-08", report=True)  # joins the group after the first discovery
    use_tenant(builder)
    celery_worker_process()
    page = sign_in(alice)
    expect(page.get_by_role("link", name="Ready (4)")).to_be_visible()
    page.click("[data-command=discover]")
    expect(page.locator("#discover-status")).to_contain_text("started")
    expect(page.locator("#discover-status")).to_contain_text("succeeded", timeout=60_000)
    expect(page.get_by_role("link", name="Ready (5)")).to_be_visible()
    expect(page.locator("#blade-main tbody .device-link", has_text="FOXTROT-08")).to_be_visible()
    page.click("[data-command=discover]")  # a new run starts after the last one ended
    expect(page.locator("#discover-status")).to_contain_text("started")


def test_the_column_chooser_survives_a_reload(sign_in, live_tenant, alice):
    page = sign_in(alice)
    page.click("[data-command=columns]")
    dialog = page.locator("#dialog[open]")
    expect(dialog).to_be_visible()
    dialog.locator("li[data-key=serial_number] input[type=checkbox]").uncheck()
    dialog.locator("li[data-key=model] input[type=checkbox]").check()
    for _ in range(6):  # Model from the 9th place to the 3rd, above Ring (the unticked Serial number is 2nd)
        dialog.locator("li[data-key=model] [data-move=up]").click()
    with page.expect_navigation():  # the save answers with HX-Refresh: wait for that reload, not race it
        dialog.get_by_role("button", name="Save").click()
    page.reload()
    headers = page.locator("#blade-main thead th[data-column]")
    titles = ["Device name", "Model", "Ring", "Readiness status", "Failed checks", "Last Intune check-in"]
    expect(headers).to_have_text([re.compile(rf"^\s*{title}\W*$") for title in titles])


def test_export_downloads_the_tab_as_csv(sign_in, live_tenant, alice):
    page = sign_in(alice)
    page.fill("#device-search", "ALPHA")
    expect(page).to_have_url(re.compile(r"q=ALPHA"))
    page.click("[data-command=export]")
    with page.expect_download() as download:
        page.click("[data-export=current]")
    assert re.fullmatch(r"autopatch-devices-ready-\d{8}-\d{6}Z\.csv", download.value.suggested_filename)
    rows = list(csv.reader(io.StringIO(open(download.value.path(), encoding="utf-8-sig").read())))
    assert rows[0][:2] == ["Device name", "Serial number"]
    assert [r[0] for r in rows[1:]] == ["ALPHA-01", "ALPHA-02", "ALPHA-03"]


def test_assign_ring_exclude_and_restore_from_the_selection(sign_in, live_tenant, alice):
    page = sign_in(alice)
    page.locator("tr", has_text="ALPHA-01").locator(".row-select").check()
    page.locator("tr", has_text="ALPHA-02").locator(".row-select").check()
    expect(page.locator("[data-selection-count]")).to_have_text("2 selected")
    page.click("[data-command=actions]")
    page.click("[data-action=assign_ring]")
    dialog = page.locator("#dialog[open]")
    expect(dialog).to_contain_text("2 devices selected")
    dialog.locator("select[name=ring]").select_option("test")
    dialog.locator("[data-confirm]").click()
    expect(dialog).to_contain_text("Assign ring: 2 of 2 done")
    dialog.get_by_role("button", name="Close").click()
    expect(page.locator("tr", has_text="ALPHA-01").locator("td[data-column=ring]")).to_have_text("Test")

    page.locator("[data-select-all]").check()
    page.click("[data-command=actions]")
    page.click("[data-action=exclude]")
    page.locator("#dialog[open] [data-confirm]").click()
    expect(page.locator("#dialog[open]")).to_contain_text("Exclude device: 4 of 4 done")
    page.locator("#dialog[open]").get_by_role("button", name="Close").click()
    expect(page.get_by_role("link", name="Ready (0)")).to_be_visible()
    assert Device.objects.filter(excluded=True).count() == 4

    page.get_by_role("link", name=re.compile(r"^Not registered")).click()
    page.select_option("#filter-status", "excluded")
    expect(page.locator("#blade-main tbody .device-link")).to_have_count(4)
    page.locator("tr", has_text="BRAVO-04").locator(".row-select").check()
    page.click("[data-command=actions]")
    page.click("[data-action=restore]")
    page.locator("#dialog[open] [data-confirm]").click()
    expect(page.locator("#dialog[open]")).to_contain_text("Restored: discovery run #")
    assert Device.objects.get(device_name="BRAVO-04").excluded is False


def test_the_fly_in_shows_the_device_and_closes_with_escape(sign_in, live_tenant, alice):
    page = sign_in(alice)
    page.get_by_role("link", name=re.compile(r"^Not ready")).click()
    page.locator("#blade-main tbody tr", has_text="CHARLIE-05").locator(
        "td[data-column=serial_number]"
    ).click()
    flyin = page.locator("#flyin")
    expect(flyin).to_be_visible()
    expect(flyin.locator("#flyin-title")).to_have_text("CHARLIE-05")
    expect(flyin).to_contain_text("No route to the internet from the device.")
    expect(flyin).to_contain_text("Status history")
    page.keyboard.press("Escape")
    expect(flyin).to_be_hidden()


def test_a_reader_has_no_discover_or_device_actions(sign_in, live_tenant, bob):
    page = sign_in(bob)
    expect(page.locator("[data-command=refresh]")).to_be_visible()
    expect(page.locator("[data-command=discover]")).to_have_count(0)
    expect(page.locator("[data-command=actions]")).to_have_count(0)
