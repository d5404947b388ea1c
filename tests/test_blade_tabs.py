"""The three tabs: what each role sees, search, filters, sort, paging, empty state and refusals."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from devices.models import Device
from devices.runs import discover_now
from tests.blade_tenant import NOT_READY, NOT_REGISTERED, READY
from tests.portal_client import signed_in

TABS = ("ready", "not-ready", "not-registered")
PAGE_QUERIES = 13  # the most any page takes, whatever its number of devices


def names_in(html: str) -> list[str]:
    return re.findall(r'class="device-link"[^>]*>([^<]+)</a>', html)


@pytest.mark.parametrize(
    "tab, shown", [("ready", READY), ("not-ready", NOT_READY), ("not-registered", NOT_REGISTERED)]
)
def test_each_tab_lists_its_devices_and_every_count(alice, blade_tenant, tab, shown):
    html = signed_in(alice).get(f"/devices/{tab}/").content.decode()
    assert sorted(names_in(html)) == sorted(shown)
    assert 'Ready <span class="count">(4)</span>' in html
    assert 'Not ready <span class="count">(1)</span>' in html
    assert 'Not registered <span class="count">(2)</span>' in html


def test_an_administrator_gets_every_command(alice, blade_tenant):
    html = signed_in(alice).get("/devices/ready/").content.decode()
    for command in ("Discover devices", "Refresh", "Columns", "Export to CSV", "Device actions"):
        assert command in html


def test_a_reader_sees_the_devices_without_discover_or_device_actions(bob, blade_tenant):
    response = signed_in(bob).get("/devices/ready/")
    html = response.content.decode()
    assert response.status_code == 200
    assert sorted(names_in(html)) == sorted(READY)
    assert "Discover devices" not in html and "Device actions" not in html
    assert "Columns" in html and "Export to CSV" in html


def test_an_htmx_request_gets_the_blade_without_the_page_around_it(alice, blade_tenant):
    response = signed_in(alice).get("/devices/not-ready/", HTTP_HX_REQUEST="true")
    html = response.content.decode()
    # The blade, after the window title htmx takes from the response's root.
    assert html.lstrip().startswith(
        '<title>Not ready · Windows Autopatch devices · Autopatch Portal</title>\n<div id="blade-main"'
    )
    assert "<html" not in html and "<head" not in html and names_in(html) == list(NOT_READY)


def test_links_keep_the_state_in_the_url(alice, blade_tenant):
    html = signed_in(alice).get("/devices/ready/?q=ALPHA&sort=-serial_number&per_page=25").content.decode()
    # Sorting by another column keeps the search and page size; the results swap and push the URL.
    assert 'hx-get="/devices/ready/?q=ALPHA&amp;sort=ring&amp;per_page=25"' in html
    assert '<div class="blade-body" hx-target="#results" hx-swap="outerHTML" hx-push-url="true"' in html
    assert 'href="/devices/not-ready/?q=ALPHA&amp;sort=-serial_number&amp;per_page=25"' in html


@pytest.mark.parametrize("query", ["ALPHA-02", "alpha-02"])
def test_search_finds_a_device_by_part_of_its_name(alice, blade_tenant, query):
    assert names_in(signed_in(alice).get(f"/devices/ready/?q={query}").content.decode()) == ["ALPHA-02"]


def test_search_finds_a_device_by_serial_number_azure_ad_device_id_and_user(alice, blade_tenant):
    device = Device.objects.get(device_name="BRAVO-04")
    client = signed_in(alice)
    for query in (device.serial_number, device.azure_ad_device_id, device.primary_user):
        assert names_in(client.get("/devices/ready/", {"q": query}).content.decode()) == ["BRAVO-04"]


def test_filters_narrow_the_tab(alice, blade_tenant):
    client = signed_in(alice)
    assert names_in(client.get("/devices/ready/?management=co_managed").content.decode()) == ["BRAVO-04"]
    html = client.get("/devices/not-registered/?failed_check=Windows+edition").content.decode()
    assert names_in(html) == ["DELTA-06"]
    ring = Device.objects.get(device_name="ALPHA-01").ring
    expected = sorted(
        Device.objects.filter(ring=ring, readiness_status="active").values_list("device_name", flat=True)
    )
    assert sorted(names_in(client.get(f"/devices/ready/?ring={ring}").content.decode())) == expected
    assert names_in(client.get("/devices/not-registered/?status=excluded").content.decode()) == []


def test_sorting_by_a_column_orders_the_rows_on_the_server(alice, blade_tenant):
    client = signed_in(alice)
    by_serial = list(
        Device.objects.filter(readiness_status="active")
        .order_by("-serial_number")
        .values_list("device_name", flat=True)
    )
    assert names_in(client.get("/devices/ready/?sort=-serial_number").content.decode()) == by_serial
    assert names_in(client.get("/devices/ready/?sort=device_name").content.decode()) == sorted(READY)


def test_paging_shows_the_chosen_number_of_rows(alice, blade_tenant):
    client = signed_in(alice)
    first = client.get("/devices/ready/?per_page=3").content.decode()
    second = client.get("/devices/ready/?per_page=3&page=2").content.decode()
    assert names_in(first) == sorted(READY)[:3] and names_in(second) == sorted(READY)[3:]
    assert "1–3 of 4" in first and 'rel="next"' in first and "4–4 of 4" in second


@pytest.mark.parametrize(
    "query, message",
    [
        ("per_page=10000", "per_page must be between 1 and 250"),
        ("per_page=abc", "whole numbers"),
        ("sort=password", "cannot sort by"),
        ("sort=-checks", "cannot sort by"),
        ("status=active", "not one of the choices"),  # not a status of this tab
        ("ring=platinum", "not one of the choices"),
        ("management=sccm", "not one of the choices"),
    ],
)
def test_bad_parameters_get_a_clear_400(alice, blade_tenant, query, message):
    response = signed_in(alice).get(f"/devices/not-ready/?{query}")
    assert response.status_code == 400
    assert message in response.content.decode()


def test_an_unknown_tab_is_not_found(alice, blade_tenant):
    assert signed_in(alice).get("/devices/everything/").status_code == 404


def test_an_empty_tenant_shows_the_registration_group_link_in_the_centre(alice, builder, use_tenant):
    use_tenant(builder)
    html = signed_in(alice).get("/devices/ready/").content.decode()
    assert 'class="empty-state"' in html and "No devices are registered yet" in html
    assert 'href="/devices/registration-group/">Windows Autopatch Device Registration</a>' in html


def test_once_devices_exist_the_link_sits_at_the_top_of_ready_and_not_registered(alice, blade_tenant):
    client = signed_in(alice)
    for tab, shown in (("ready", True), ("not-registered", True), ("not-ready", False)):
        html = client.get(f"/devices/{tab}/").content.decode()
        assert "empty-state" not in html
        assert ('class="group-link-top"' in html) is shown


def test_a_real_tenant_links_to_the_group_in_the_entra_admin_center(alice, blade_tenant, settings):
    settings.AUTOPATCH_TENANT_FILE = ""
    settings.AUTOPATCH_TENANT_ID, settings.AUTOPATCH_CLIENT_ID, settings.AUTOPATCH_CLIENT_SECRET = (
        "t",
        "c",
        "s",
    )
    settings.AUTOPATCH_REGISTRATION_GROUP_ID = "0f1e2d3c-0000-4000-8000-000000000001"
    html = signed_in(alice).get("/devices/ready/").content.decode()
    assert (
        "https://entra.microsoft.com/#view/Microsoft_AAD_IAM/GroupDetailsMenuBlade/~/Members/groupId/"
        "0f1e2d3c-0000-4000-8000-000000000001"
    ) in html


def test_the_simulated_group_page_lists_members_and_nested_groups(alice, builder, use_tenant):
    nested = builder.group("Autopatch - Finance laptops", parent=builder.registration_group)
    builder.device("DIRECT-01")
    builder.device("NESTED-01", member_of=nested)
    use_tenant(builder)
    discover_now()
    html = signed_in(alice).get("/devices/registration-group/").content.decode()
    assert "Windows Autopatch Device Registration" in html
    assert "Autopatch - Finance laptops" in html and "DIRECT-01" in html
    assert "NESTED-01" not in html  # a member of the nested group, not of the registration group


def test_the_group_page_follows_no_link_from_its_url(alice, builder, use_tenant):
    """The page reads Graph's pages itself: a `next` link in its URL is never followed with the app's token."""
    tenant = use_tenant(builder)
    response = signed_in(alice).get("/devices/registration-group/?next=https://example.com/steal")
    assert response.status_code == 200 and "example.com" not in response.content.decode()
    assert not [key for key in tenant.requests if "example.com" in key]


def test_the_last_discovery_line_says_when_how_and_with_what_outcome(alice, blade_tenant):
    html = signed_in(alice).get("/devices/ready/").content.decode()
    assert re.search(r"Last discovery: \d{4}-\d\d-\d\d \d\d:\d\d UTC, command line: .*Succeeded", html)


def test_a_page_takes_the_same_few_queries_whatever_its_size(
    alice, blade_tenant, django_assert_max_num_queries
):
    # A bound on a constant: a search adds its count, with two statements around it (queries.count_up_to), and
    # every page reads its keys, then its rows (blade.page_rows).
    client = signed_in(alice)
    client.get("/devices/ready/")
    with django_assert_max_num_queries(PAGE_QUERIES):
        client.get("/devices/ready/?per_page=250&q=A")
    with django_assert_max_num_queries(PAGE_QUERIES):
        client.get("/devices/ready/?per_page=250")


def test_a_page_past_the_end_shows_the_last_page(alice, blade_tenant):
    html = signed_in(alice).get("/devices/ready/?per_page=3&page=99").content.decode()
    assert names_in(html) == sorted(READY)[3:]
    assert "4–4 of 4" in html and "Page 2 of 2" in html and 'rel="prev"' in html and 'rel="next"' not in html


def test_search_finds_a_device_by_the_start_of_its_serial_number_or_device_id(alice, blade_tenant):
    device = Device.objects.get(device_name="BRAVO-04")
    client = signed_in(alice)
    for query in (
        device.serial_number[:-1],
        device.serial_number[:-1].lower(),
        device.azure_ad_device_id[:8],
        device.azure_ad_device_id[:13].lower(),  # past its first dash, as typed
    ):
        assert names_in(client.get("/devices/ready/", {"q": query}).content.decode()) == ["BRAVO-04"]
    assert names_in(client.get("/devices/ready/", {"q": device.serial_number[1:]}).content.decode()) == []


def test_rings_sort_in_deployment_order_not_alphabetically(alice, blade_tenant):
    rings = {"ALPHA-01": "broad", "ALPHA-02": "test", "ALPHA-03": "fast", "BRAVO-04": "first"}
    for name, ring in rings.items():
        Device.objects.filter(device_name=name).update(ring=ring)
    client = signed_in(alice)
    assert names_in(client.get("/devices/ready/?sort=ring").content.decode()) == [
        "ALPHA-02",
        "BRAVO-04",
        "ALPHA-03",
        "ALPHA-01",
    ]  # Test, First, Fast, Broad
    assert names_in(client.get("/devices/ready/?sort=-ring").content.decode()) == [
        "ALPHA-01",
        "ALPHA-03",
        "BRAVO-04",
        "ALPHA-02",
    ]


def test_a_nul_in_the_search_gets_a_clear_400(alice, blade_tenant):
    client = signed_in(alice)
    for path in ("/devices/ready/", "/devices/ready/export.csv"):
        response = client.get(path, {"q": "AL\x00PHA"})
        assert response.status_code == 400 and "NUL" in response.content.decode()


@pytest.mark.parametrize(
    "path, headers",
    [
        ("/devices/ready/?per_page=250", {}),
        ("/devices/not-registered/?per_page=250&sort=-last_discovered_at", {}),
        ("/devices/not-ready/?per_page=250&sort=ring&q=E", {}),
        ("/devices/ready/?per_page=250&q=A", {"HX-Target": "results"}),
        ("/devices/ready/?per_page=250&device={pk}", {}),
        ("/devices/device/{pk}/", {}),
        ("/accounts/audit/", {}),
    ],
)
def test_no_page_grows_a_query_per_row(alice, blade_tenant, django_assert_max_num_queries, path, headers):
    """Each page takes the same few queries with 7 devices as with 1,007 (a query per row would show)."""
    Device.objects.bulk_create(
        Device(azure_ad_device_id=f"bulk-{n}", device_name=f"BULK-{n:04d}", readiness_status=s)
        for n in range(1000)
        for s in ["active", "inactive", "excluded"][n % 3 : n % 3 + 1]
    )
    client = signed_in(alice)
    pk = Device.objects.get(device_name="ALPHA-01").pk
    url = path.format(pk=pk)
    client.get(url, headers={"HX-Request": "true", **headers})
    with django_assert_max_num_queries(PAGE_QUERIES):
        response = client.get(url, headers={"HX-Request": "true", **headers})
    assert response.status_code == 200


@pytest.mark.parametrize("sort", ["device_name", "-serial_number", "ring", "-last_discovered_at"])
def test_every_page_shows_its_own_rows_also_past_the_middle(alice, blade_tenant, sort):
    Device.objects.bulk_create(
        Device(
            azure_ad_device_id=f"bulk-{n}",
            device_name=f"BULK-{n:03d}",
            readiness_status="active",
            ring=["test", "fast", ""][n % 3],
        )
        for n in range(11)
    )
    client = signed_in(alice)
    whole = names_in(client.get(f"/devices/ready/?sort={sort}&per_page=250").content.decode())
    pages = [
        names_in(client.get(f"/devices/ready/?sort={sort}&per_page=4&page={n}").content.decode())
        for n in (1, 2, 3, 4)
    ]
    assert [name for page in pages for name in page] == whole and len(whole) == 15


def test_a_search_that_matches_more_than_an_action_takes_is_counted_no_further(alice, blade_tenant):
    """Past 1,000 matches (the most an action takes) the pager says "more than" and pages on; deeper pages count
    as far as they need, show their own rows, and the last one has its exact count."""
    Device.objects.bulk_create(
        Device(azure_ad_device_id=f"bulk-{n}", device_name=f"CAP-{n:04d}", readiness_status="active")
        for n in range(1100)
    )
    client = signed_in(alice)

    first = client.get("/devices/ready/?q=CAP").content.decode()
    assert "1–50 of more than 1000" in first and "Page 1 of more than 20" in first and 'rel="next"' in first
    assert 'aria-rowcount="-1"' in first
    assert "More than 1000 devices match; an action takes at most 1000" in first
    assert "matching devices</button>" not in first

    deep = client.get("/devices/ready/?q=CAP&page=21").content.decode()
    assert names_in(deep) == [f"CAP-{n:04d}" for n in range(1000, 1050)]
    assert "1001–1050 of more than 1050" in deep and 'rel="next"' in deep

    last = client.get("/devices/ready/?q=CAP&page=22").content.decode()
    assert names_in(last) == [f"CAP-{n:04d}" for n in range(1050, 1100)]
    assert "1051–1100 of 1100" in last and "Page 22 of 22" in last and 'rel="next"' not in last


def test_a_search_in_the_name_order_reads_its_page_and_count_in_one_walk(alice, blade_tenant):
    """In the name order (whose index carries the searched columns) the page's keys and the count up to 1,000 come
    from one statement; in either direction, and on every page up to the 1,000th device, each row is where the
    whole list puts it."""
    Device.objects.bulk_create(
        Device(azure_ad_device_id=f"bulk-{n}", device_name=f"CAP-{n:04d}", readiness_status="active")
        for n in range(1100)
    )
    client = signed_in(alice)
    client.get("/devices/ready/")
    with CaptureQueriesContext(connection) as queries:
        first = client.get("/devices/ready/?q=cap&sort=-device_name").content.decode()
    assert names_in(first) == [f"CAP-{n:04d}" for n in range(1099, 1049, -1)]
    assert "1–50 of more than 1000" in first
    searching = [q["sql"] for q in queries.captured_queries if "LIKE 'CAP%'" in q["sql"]]
    assert len(searching) == 2, searching  # the keys up to 1,001, then the page's rows

    twentieth = client.get("/devices/ready/?q=cap&sort=-device_name&page=20").content.decode()
    assert names_in(twentieth) == [f"CAP-{n:04d}" for n in range(149, 99, -1)]
    assert "951–1000 of more than 1000" in twentieth
    deeper = client.get("/devices/ready/?q=cap&sort=-device_name&page=21").content.decode()
    assert names_in(deeper) == [f"CAP-{n:04d}" for n in range(99, 49, -1)]

    few = client.get("/devices/ready/?q=CAP-109&per_page=4&page=3").content.decode()
    assert names_in(few) == [f"CAP-{n:04d}" for n in (1098, 1099)]
    assert "9–10 of 10" in few and "Page 3 of 3" in few


def test_a_search_that_matches_up_to_an_actions_worth_offers_all_of_them(alice, blade_tenant):
    Device.objects.bulk_create(
        Device(azure_ad_device_id=f"bulk-{n}", device_name=f"CAP-{n:04d}", readiness_status="active")
        for n in range(1000)
    )
    html = signed_in(alice).get("/devices/ready/?q=CAP").content.decode()
    assert "1–50 of 1000" in html and "Page 1 of 20" in html and 'aria-rowcount="1000"' in html
    assert "Select all 1000 matching devices" in html


def test_a_row_writes_what_the_tenant_sent_as_text_never_as_markup(alice, blade_tenant):
    # Names and serial numbers come from the tenant: whatever they hold is shown as text, in the cell, the fly-in
    # link and the checkbox's label; a device with no name is opened by its Azure AD device ID.
    hostile = '<img src=x onerror="alert(1)">&\'Q'
    named, unnamed = Device.objects.filter(readiness_status="active").order_by("pk")[:2]
    Device.objects.filter(pk=named.pk).update(device_name=hostile, serial_number="<b>SN</b>")
    Device.objects.filter(pk=unnamed.pk).update(device_name="")
    html = signed_in(alice).get("/devices/ready/").content.decode()
    assert "<img" not in html and "<b>SN" not in html
    escaped = "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#x27;Q"
    row = re.search(rf'<tr data-device="{named.pk}".*?</tr>', html).group(0)
    assert f'aria-label="Select {escaped}"' in row
    assert f'hx-push-url="/devices/ready/?device={named.pk}">{escaped}</a>' in row
    assert '<td data-column="serial_number">&lt;b&gt;SN&lt;/b&gt;</td>' in row
    row = re.search(rf'<tr data-device="{unnamed.pk}".*?</tr>', html).group(0)
    assert f">{unnamed.azure_ad_device_id}</a>" in row
