"""The registration group page: members, nested groups and their kinds, health, and adding devices through Graph."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection as connection_db
from django.db import transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AuditEvent
from autopatch_portal.tenant import connection
from devices.actions import exclude
from devices.copy_cache import last_finished_run
from devices.dual_state import dual_state_pairs
from devices.group_members import INLINE_ROWS, MAX_ROWS, SHOWN_ROWS, TEMPLATE_HEADING, carry_out
from devices.models import Device, GroupAddition
from devices.registration_group import copied_group_id, read_copy
from devices.runs import discover_now
from devices.tasks import add_to_group

from .portal_client import signed_in

pytestmark = pytest.mark.django_db
PAGE, ADD = "/devices/registration-group/", "/devices/registration-group/add/"


def csv_file(*rows: str, heading: str = TEMPLATE_HEADING, name: str = "members.csv") -> SimpleUploadedFile:
    text = "\n".join([heading, *rows]) + "\n"
    return SimpleUploadedFile(name, text.encode("utf-8"), content_type="text/csv")


def upload(client, file: SimpleUploadedFile):
    return client.post(ADD, {"file": file, "csrfmiddlewaretoken": client.csrf_token()})


def members(tenant) -> list[str]:
    return list(tenant.groups[tenant.registration_group_id]["members"])


@pytest.fixture
def group_tenant(builder, use_tenant):
    """Direct devices, a dynamic, a synced and a Configuration Manager nested group, a group two levels down,
    a user, and devices outside the group."""
    registration = builder.registration_group
    builder.device("DIRECT-01", report=True)
    dynamic = builder.group("Autopatch - Host pool", parent=registration)
    dynamic.update(groupTypes=["DynamicMembership"], membershipRule='(device.displayName -startsWith "AVD")')
    builder.device("AVD-01", member_of=dynamic)
    synced = builder.group("Autopatch - Finance (AD)", parent=registration)
    synced["onPremisesSyncEnabled"] = True
    builder.device("FIN-01", member_of=synced)
    collection = builder.group("Autopatch - Hybrid", parent=registration)
    collection["description"] = "Synced from the ConfigMgr collection 'All hybrid workstations'"
    deep = builder.group("Autopatch - Pilot", parent=synced)
    builder.device("PILOT-01", member_of=deep)
    builder.user("Megan Bowen", member_of=registration)
    outside = [builder.device(f"SPARE-0{i}", member_of=None) for i in (1, 2)]
    tenant = use_tenant(builder)
    discover_now()
    return builder, tenant, outside


def test_the_page_shows_members_nested_groups_with_their_kind_and_what_to_fix(alice, group_tenant):
    html = signed_in(alice).get(PAGE).content.decode()
    assert "Direct device members (1)" in html and "DIRECT-01" in html and "Active" in html
    assert "Nested groups (3)" in html
    assert "Dynamic" in html and "(device.displayName -startsWith &quot;AVD&quot;)" in html
    assert "Synced from on-premises Active Directory" in html
    assert (
        "Configuration Manager collection sync</td>" in html
        and "recognises one by its name or description" in html
    )
    # The Configuration Manager group holds no device, the others one each.
    assert "Nested group Autopatch - Hybrid holds no devices" in html
    assert "Windows Autopatch Device Registration › Autopatch - Finance (AD) › Autopatch - Pilot" in html, (
        "the path of a group nested two levels down"
    )
    assert "Members that are not devices" in html and "Megan Bowen (user, in the registration group)" in html
    assert "The group is empty" not in html


def test_the_group_its_nested_groups_and_owners_come_in_one_round_trip_and_pages_are_followed(
    alice, group_tenant, settings
):
    builder, tenant, outside = group_tenant
    settings.AUTOPATCH_GRAPH_PAGE_SIZE = 2  # three nested groups: a second page, asked with the same header
    tenant.requests = Counter()
    html = signed_in(alice).get(PAGE).content.decode()
    assert "Nested groups (3)" in html and "Autopatch - Hybrid" in html and "Autopatch - Host pool" in html
    # One $batch carries the three reads (the tenant counts each item it answers, batched or not); the nested
    # groups' second page follows its nextLink.
    group_id = tenant.registration_group_id
    assert tenant.requests["POST /v1.0/$batch"] == 1
    assert tenant.requests[f"GET /v1.0/groups/{group_id}"] == 1
    assert tenant.requests[f"GET /v1.0/groups/{group_id}/owners"] == 1
    assert tenant.requests[f"GET /v1.0/groups/{group_id}/members/microsoft.graph.group"] == 2


def test_a_graph_read_the_page_is_refused_is_named_and_the_copy_still_answers(alice, group_tenant):
    builder, tenant, outside = group_tenant
    tenant.inject("/owners", 403)
    html = signed_in(alice).get(PAGE).content.decode()
    assert "Microsoft Graph could not be read" in html
    assert "Direct device members (1)" in html and "DIRECT-01" in html  # from the copy discovery keeps


def test_an_empty_group_and_a_collection_synced_straight_into_it_are_called_out(alice, builder, use_tenant):
    builder.registration_group["description"] = "Configuration Manager collection sync: All workstations"
    use_tenant(builder)
    discover_now()
    html = signed_in(alice).get(PAGE).content.decode()
    assert "The group is empty" in html
    assert "A Configuration Manager collection syncs straight into the registration group" in html
    assert "nest that group in the registration group instead" in html


def test_a_bulk_add_file_answers_each_row_and_the_next_discovery_finds_the_devices(alice, group_tenant):
    builder, tenant, outside = group_tenant
    direct = builder.devices[0]
    megan = next(u for u in builder.users if u["displayName"] == "Megan Bowen")
    unknown = "0f0f0f0f-0000-4000-8000-000000000000"
    client = signed_in(alice)
    response = upload(
        client,
        csv_file(outside[0]["id"], outside[1]["deviceId"], direct["id"], unknown, megan["id"]),
    )
    html = response.content.decode()
    assert response.status_code == 200, html[:500]
    assert "2 added, 1 already a member, 1 not a device, 1 not found" in html
    results = html[html.index('id="add-results"') :]
    for expected in ("SPARE-01", "Added", "Already a member", "Not found", "Not a device", "It is a user"):
        assert expected in results
    assert {outside[0]["id"], outside[1]["id"]} <= set(members(tenant))
    event = AuditEvent.objects.get(action="group_members")
    assert event.actor == "alice" and event.result.startswith("2 added")
    assert event.details["source"] == "file members.csv"

    run = discover_now()
    assert run.counts["candidates"] == 5  # PILOT-01 is two levels down
    added = Device.objects.get(device_name="SPARE-01")
    assert added.in_registration_group and added.added_through == "direct"


def test_what_was_added_outlives_the_process_that_added_it(alice, group_tenant, settings):
    builder, tenant, outside = group_tenant
    upload(signed_in(alice), csv_file(outside[0]["id"]))
    connection._simulated.clear()  # as another process (the worker) loads the tenant file
    reloaded = connection.simulated_tenant(connection.tenant_file())
    assert reloaded is not tenant and outside[0]["id"] in members(reloaded)


def test_a_throttled_row_is_retried_and_says_so(alice, group_tenant):
    builder, tenant, outside = group_tenant
    tenant.inject("/members/$ref", 429, method="POST", retry_after="0.01")
    html = upload(signed_in(alice), csv_file(outside[0]["id"], outside[1]["id"])).content.decode()
    assert "Added (throttled, retried)" in html
    assert {outside[0]["id"], outside[1]["id"]} <= set(members(tenant))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "The file is empty"),
        (b"Device name\nfoo\n", "The first row is not the template"),
        (f"{TEMPLATE_HEADING}\n".encode() + "NAMÉ\n".encode("latin-1"), "not UTF-8"),
        (f"{TEMPLATE_HEADING}\nExample: 9832aad8-e4fe-496b-a604-95c6ef01ae75\n".encode(), "example row"),
        (
            f"{TEMPLATE_HEADING}\nmegan.bowen@contoso.example\n".encode(),
            "names a user: only devices are added",
        ),
        (f"{TEMPLATE_HEADING}\n".encode(), "no IDs"),
        (
            (
                TEMPLATE_HEADING
                + "\n"
                + "\n".join(f"00000000-0000-4000-8000-{i:012d}" for i in range(MAX_ROWS + 1))
            ).encode(),
            "at most 10,000",
        ),
    ],
)
def test_a_bad_file_is_refused_with_a_clear_error_and_adds_nothing(alice, group_tenant, content, message):
    builder, tenant, outside = group_tenant
    before = members(tenant)
    response = upload(signed_in(alice), SimpleUploadedFile("bad.csv", content, content_type="text/csv"))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert members(tenant) == before
    assert not AuditEvent.objects.filter(action="group_members").exists()


def test_a_bad_row_among_good_ones_adds_nothing_and_names_the_row(alice, group_tenant):
    builder, tenant, outside = group_tenant
    before = members(tenant)
    response = upload(signed_in(alice), csv_file(outside[0]["id"], "SPARE-02", outside[1]["id"]))
    assert response.status_code == 400
    assert "row 3: &#x27;SPARE-02&#x27; is not an object ID or device ID" in response.content.decode()
    assert members(tenant) == before


def test_the_templates_version_line_is_accepted(alice, group_tenant):
    builder, tenant, outside = group_tenant
    file = SimpleUploadedFile(
        "v1.csv", f"version:v1.0\n{TEMPLATE_HEADING}\n{outside[0]['id']}\n".encode(), content_type="text/csv"
    )
    assert "1 added" in upload(signed_in(alice), file).content.decode()


def test_a_missing_permission_is_named_and_nothing_is_added(alice, builder, use_tenant):
    spare = builder.device("SPARE-01", member_of=None)
    data = builder.as_json()
    # Every permission the portal uses but the one adding members needs.
    data["applicationPermissions"] = [
        "Device.Read.All",
        "GroupMember.Read.All",
        "DeviceManagementManagedDevices.Read.All",
        "DeviceManagementConfiguration.ReadWrite.All",
    ]
    tenant = use_tenant(data)
    discover_now()
    response = upload(signed_in(alice), csv_file(spare["id"]))
    assert response.status_code == 502
    assert "lacks the GroupMember.ReadWrite.All application permission" in response.content.decode()
    assert spare["id"] not in members(tenant)
    assert AuditEvent.objects.get(action="group_members").result.startswith("failed")


def test_devices_the_portal_knows_outside_the_group_can_be_picked(alice, builder, use_tenant):
    leaving = builder.device("LEAVER-01", report=True)
    use_tenant(builder)
    discover_now()
    builder.registration_group["members"].remove(leaving["id"])
    tenant = use_tenant(builder)
    discover_now()
    client = signed_in(alice)
    html = client.get(PAGE).content.decode()
    assert f'name="ids" value="{leaving["id"]}"' in html
    html = client.form_post(ADD, {"ids": [leaving["id"]]}).content.decode()
    assert "1 added" in html and leaving["id"] in members(tenant)


def test_the_page_shows_what_the_last_run_read_and_each_device_as_it_is_now(alice, group_tenant, use_tenant):
    builder, _, outside = group_tenant
    client = signed_in(alice)
    page = client.get(PAGE).content.decode()
    assert "Megan Bowen (user, in the registration group)" in page and "Direct device members (1)" in page
    # The tenant changes (a user leaves the group, a device joins it): until a run has read it, the page shows
    # what the last run read, and says which run that was.
    megan = next(user["id"] for user in builder.users if user["displayName"] == "Megan Bowen")
    builder.registration_group["members"].remove(megan)
    builder.registration_group["members"].append(outside[0]["id"])
    use_tenant(builder)
    page = client.get(PAGE).content.decode()
    assert "Megan Bowen (user" in page and "Direct device members (1)" in page
    assert "Members as discovery run #" in page
    # A device's readiness status is the portal's now, not as it was when the run ended.
    exclude(list(Device.objects.filter(device_name="DIRECT-01")), "alice")
    assert "<td>DIRECT-01</td>" in page
    page = client.get(PAGE).content.decode()
    assert "Excluded" in page and "Active" not in page.split("Direct device members")[1].split("</table>")[0]
    run = discover_now()
    page = client.get(PAGE).content.decode()
    assert f"Members as discovery run #{run.pk} read them" in page
    assert "Megan Bowen" not in page and "Direct device members (2)" in page and "SPARE-01" in page


def test_a_search_for_devices_to_pick_with_a_nul_character_is_refused(alice, group_tenant):
    # PostgreSQL refuses NUL in text (a 500 there); no device name holds one.
    client = signed_in(alice)
    for search in ("%00", "DIRECT%00"):
        response = client.get(f"{PAGE}?pick={search}")
        assert response.status_code == 400
        assert "contains a NUL character" in response.content.decode()
    assert client.get(f"{PAGE}?pick=DIRECT").status_code == 200


def test_a_reader_sees_the_page_without_the_form_and_cannot_add(bob, group_tenant):
    builder, tenant, outside = group_tenant
    client = signed_in(bob)
    html = client.get(PAGE).content.decode()
    assert "DIRECT-01" in html and "Upload and add" not in html and 'name="ids"' not in html
    before = members(tenant)
    assert upload(client, csv_file(outside[0]["id"])).status_code == 403
    assert client.form_post(ADD, {"ids": [outside[0]["id"]]}).status_code == 403
    assert members(tenant) == before


def test_picking_nothing_or_a_forged_id_is_refused(alice, group_tenant):
    client = signed_in(alice)
    assert "Pick one or more devices" in client.form_post(ADD, {}).content.decode()
    response = client.form_post(ADD, {"ids": ["not-a-guid"]})
    assert response.status_code == 400 and "not valid" in response.content.decode()


def test_the_tenant_file_contract_takes_application_permissions_as_a_list(builder, use_tenant):
    data = builder.as_json()
    data["applicationPermissions"] = "GroupMember.ReadWrite.All"
    with pytest.raises(ValueError, match="applicationPermissions"):
        use_tenant(json.loads(json.dumps(data)))


def test_a_device_member_without_an_entra_device_id_is_called_out(alice, builder, use_tenant):
    builder.device("GOOD-01")
    broken = builder.device("NOID-01", managed=False)
    broken["deviceId"] = ""
    use_tenant(builder)
    run = discover_now()
    html = signed_in(alice).get(PAGE).content.decode()
    assert "Devices without an Entra device ID" in html and f"NOID-01 ({broken['id']})" in html
    # The run lists the same member, by the same rule, among those it did not discover.
    assert [(i["id"], i["reason"]) for i in run.ignored if i["type"] == "device"] == [
        (broken["id"], "Device without an Azure AD device ID.")
    ]


def test_a_file_too_long_for_one_request_is_added_by_the_worker_and_the_page_follows_it(
    alice, bob, group_tenant
):
    builder, tenant, outside = group_tenant
    unknown = [f"0f0f0f0f-0000-4000-8000-{i:012d}" for i in range(INLINE_ROWS)]
    client = signed_in(alice)
    response = upload(client, csv_file(outside[0]["id"], *unknown, outside[1]["deviceId"]))
    assert response.status_code == 302
    addition = GroupAddition.objects.get()
    assert response["Location"] == f"{PAGE}?addition={addition.pk}#add-title"
    assert not set(members(tenant)) & {outside[0]["id"], outside[1]["id"]}  # nothing added within the request

    waiting = client.get(response["Location"]).content.decode()
    status_url = f"/devices/registration-group/additions/{addition.pk}/"
    assert f"Adding the {INLINE_ROWS + 2} rows of file members.csv" in waiting
    assert f'hx-get="{status_url}" hx-trigger="every 2s"' in waiting

    add_to_group(addition.pk)  # what the worker runs for it
    assert carry_out(addition.pk) is None  # a second worker finds it taken: never added twice
    done = signed_in(bob).get(status_url).content.decode()  # a reader follows it too
    assert f"2 added, {INLINE_ROWS} not found" in done and "hx-trigger" not in done
    # The page lists the rows to look at (the 200 not found), not the two added; the CSV has every row's answer.
    listed = done[done.index('id="add-results"') :]
    assert listed.count("<tr>") == 1 + INLINE_ROWS and unknown[-1] in listed and "SPARE-01" not in listed
    assert f"{INLINE_ROWS} of the {INLINE_ROWS + 2} rows did not put a device in the group." in done
    answers_url = f"{status_url}answers.csv"
    assert f'href="{answers_url}"' in done
    answers = b"".join(signed_in(bob).get(answers_url).streaming_content).decode("utf-8")
    lines = answers.splitlines()
    assert lines[0] == '\ufeff"Row","ID","Device","Result","Detail"' and len(lines) == INLINE_ROWS + 3
    assert lines[1] == f'"2","{outside[0]["id"]}","SPARE-01","Added",""'
    assert lines[2] == f'"3","{unknown[0]}","","Not found","No directory object has this ID."'
    assert {outside[0]["id"], outside[1]["id"]} <= set(members(tenant))
    queued, added = AuditEvent.objects.filter(action="group_members").order_by("pk")
    assert (queued.actor, queued.result) == ("alice", f"queued: {INLINE_ROWS + 2} rows")
    assert (added.actor, added.source_ip, added.details["addition"]) == ("alice", "127.0.0.1", addition.pk)
    assert added.result.startswith("2 added") and added.details["source"] == "file members.csv"
    for bad in ("999999", str(2**64), "x"):
        assert client.get(f"/devices/registration-group/additions/{bad}/").status_code == 404


def test_a_long_addition_lists_the_first_rows_to_look_at_and_its_answers_come_whole_as_csv(
    alice, group_tenant
):
    builder, tenant, outside = group_tenant
    unknown = [f"0f0f0f0f-0000-4000-8000-{i:012d}" for i in range(SHOWN_ROWS + 50)]
    client = signed_in(alice)
    response = upload(client, csv_file(*unknown, outside[0]["id"]))
    addition = GroupAddition.objects.get()
    answers_url = f"/devices/registration-group/additions/{addition.pk}/answers.csv"
    assert client.get(answers_url).status_code == 404  # not ended yet: no answers to give
    carry_out(addition.pk)
    html = client.get(response["Location"]).content.decode()
    listed = html[html.index('id="add-results"') : html.index("</table>", html.index('id="add-results"'))]
    assert listed.count("<tr>") == 1 + SHOWN_ROWS
    assert unknown[SHOWN_ROWS - 1] in listed and unknown[SHOWN_ROWS] not in listed
    assert f"{SHOWN_ROWS + 50} of the {SHOWN_ROWS + 51} rows did not put a device in the group; " in html
    assert f"the first {SHOWN_ROWS} are listed." in html
    answers = b"".join(client.get(answers_url).streaming_content).decode("utf-8").splitlines()
    assert len(answers) == 1 + SHOWN_ROWS + 51 and answers[-1].endswith('"SPARE-01","Added",""')
    exported = AuditEvent.objects.get(action="export")
    assert (exported.actor, exported.target, exported.result) == (
        "alice",
        f"Registration group addition {addition.pk}",
        f"{SHOWN_ROWS + 51} rows",
    )
    for bad in ("999999", str(2**64), "x"):
        assert client.get(f"/devices/registration-group/additions/{bad}/answers.csv").status_code == 404


def test_an_addition_graph_refuses_says_so_and_adds_nothing(alice, group_tenant):
    builder, tenant, outside = group_tenant
    client = signed_in(alice)
    response = upload(client, csv_file(*[outside[0]["id"]] * (INLINE_ROWS + 1)))
    addition = GroupAddition.objects.get()
    tenant.inject("/members/$ref", 403, method="POST")
    carry_out(addition.pk)
    html = client.get(response["Location"]).content.decode()
    assert "Nothing was added." in html and "GroupMember.ReadWrite.All" in html
    assert outside[0]["id"] not in members(tenant)
    assert AuditEvent.objects.filter(action="group_members", result__startswith="failed").exists()


def test_an_addition_left_running_by_a_worker_that_died_says_so_and_is_taken_over(alice, group_tenant):
    builder, tenant, outside = group_tenant
    client = signed_in(alice)
    response = upload(client, csv_file(outside[0]["id"], *[outside[1]["id"]] * INLINE_ROWS))
    addition = GroupAddition.objects.get()
    # A worker took it a minute ago and is still going: nobody else takes it, and the page keeps following it.
    GroupAddition.objects.filter(pk=addition.pk).update(
        status="running", updated_at=timezone.now() - timedelta(minutes=1)
    )
    assert carry_out(addition.pk) is None
    assert "hx-trigger" in client.get(response["Location"]).content.decode()
    # Silent for longer than a live worker ever is: it died. The page says so and stops; the task, delivered
    # again, takes it over.
    GroupAddition.objects.filter(pk=addition.pk).update(updated_at=timezone.now() - timedelta(minutes=16))
    stopped = client.get(response["Location"]).content.decode()
    assert "Stopped:" in stopped and "hx-trigger" not in stopped
    assert carry_out(addition.pk).status == GroupAddition.Status.DONE
    assert (
        f"{INLINE_ROWS + 1} added" in client.get(response["Location"]).content.decode()
    )  # a row repeated: one answer
    assert {outside[0]["id"], outside[1]["id"]} <= set(members(tenant))


def index_names(plan: dict) -> set[str]:
    return {
        plan.get("Index Name", ""),
        *(name for child in plan.get("Plans", []) for name in index_names(child)),
    }


@pytest.mark.skipif(connection_db.vendor != "postgresql", reason="query plans of PostgreSQL")
def test_the_page_reads_members_by_type_and_registered_records_through_their_indexes(alice, group_tenant):
    """At 100,000 devices each read of every member's row cost 50 ms, and the dual state check read every device
    record's JSON (110 ms): the page's queries of the tenant copy can be answered from the two partial indexes."""
    with CaptureQueriesContext(connection_db) as queries:  # the page's own reads, and the copy's the run made
        assert signed_in(alice).get(PAGE).status_code == 200
        read_copy(copied_group_id(), last_finished_run())
        dual_state_pairs()
    used: set[str] = set()
    for query in queries.captured_queries:
        if not query["sql"].startswith("SELECT") or "devices_tenantobject" not in query["sql"]:
            continue
        with transaction.atomic(), connection_db.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute(f"EXPLAIN (FORMAT JSON) {query['sql']}")
            plan = cursor.fetchone()[0]
        used |= index_names((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])
    assert {"tenant_member_by_type", "tenant_azure_ad_registered"} <= used


def test_a_run_reads_the_copy_ahead_so_the_first_views_after_it_cost_what_later_ones_do(alice, group_tenant):
    client = signed_in(alice)
    for url, shown in (
        (PAGE, "Direct device members (1)"),
        ("/devices/dual-state/", "Devices in dual state (0)"),
    ):
        views = []
        for _ in range(2):
            with CaptureQueriesContext(connection_db) as queries:
                page = client.get(url).content.decode()
            assert shown in page
            views.append(
                [re.sub(r"'\d{4}-\d\d-\d\d[^']*'", "<time>", q["sql"]) for q in queries.captured_queries]
            )
        assert views[0] == views[1], url  # no reading of the copy left for the first admin after the run
