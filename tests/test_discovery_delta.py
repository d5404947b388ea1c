"""Delta reads: a run reads what changed since the last one, keeps its delta links, and reads in full when it must."""

from __future__ import annotations

from datetime import timedelta

import pytest

from autopatch_portal.tenant.simulated import delta as simulated_delta
from autopatch_portal.tenant.simulated.generator import iso
from devices.models import DeltaLink, Device, DiscoveryRun, ReadinessStatus
from devices.runs import discover_now

pytestmark = pytest.mark.django_db

MANAGED = "GET /beta/deviceManagement/managedDevices"


def device(builder_device: dict) -> Device:
    return Device.objects.get(azure_ad_device_id=builder_device["deviceId"])


@pytest.fixture
def tenant_of_three_groups(builder, use_tenant):
    """Two devices direct, one in each of two nested groups, and a deeper group and a user that are ignored."""
    finance = builder.group("Autopatch - Finance laptops", parent=builder.registration_group)
    hosts = builder.group("Autopatch - Host pool", parent=builder.registration_group)
    builder.group("Autopatch - Too deep", parent=finance)
    builder.user("Megan Bowen", member_of=builder.registration_group)
    devices = {
        "direct": [builder.device(), builder.device()],
        "finance": builder.device(member_of=finance),
        "hosts": builder.device(member_of=hosts),
    }
    return devices, finance, hosts


def test_the_first_run_reads_in_full_and_keeps_a_delta_link_per_collection(
    builder, use_tenant, tenant_of_three_groups
):
    devices, finance, hosts = tenant_of_three_groups
    use_tenant(builder)

    run = discover_now()

    assert run.status == DiscoveryRun.Status.SUCCEEDED
    assert Device.objects.filter(readiness_status=ReadinessStatus.ACTIVE).count() == 4
    assert device(devices["finance"]).added_through == "Autopatch - Finance laptops"
    links = {link.name: link for link in DeltaLink.objects.exclude(name__startswith="readiness-run-states:")}
    group_id = builder.registration_group["id"]
    assert set(links) == {
        "devices",
        "managed",
        f"group:{group_id}",
        f"group:{finance['id']}",
        f"group:{hosts['id']}",
    }
    assert "$deltatoken=" in links["devices"].link and "$deltatoken=" in links[f"group:{group_id}"].link
    assert links["managed"].full_read_at == links["managed"].read_at == run.started_at
    ignored = {item["name"]: item["type"] for item in run.ignored}
    assert ignored == {"Autopatch - Too deep": "group", "Megan Bowen": "user"}


def test_a_second_run_with_nothing_changed_asks_for_changes_only(builder, use_tenant, tenant_of_three_groups):
    use_tenant(builder)
    discover_now()
    tenant = use_tenant(builder)  # the same tenant, read again from its file
    tenant.requests.clear()

    run = discover_now()

    assert run.status == DiscoveryRun.Status.SUCCEEDED
    assert run.counts["read_devices"] == 0 and run.counts["read_managed"] == 0
    assert run.counts["changed"] == 0
    requests = tenant.requests
    assert requests["GET /v1.0/devices/delta"] == 1
    # The registration group's round, then one round its two nested groups share.
    assert requests["GET /v1.0/groups/delta"] == 2
    assert requests[MANAGED] == 1
    assert requests["GET /v1.0/devices"] == 0 and not any("/members" in key for key in requests)
    assert run.graph_requests <= 7
    ignored = {item["name"] for item in run.ignored}
    assert ignored == {"Autopatch - Too deep", "Megan Bowen"}  # names kept from the first run
    assert not any("microsoft.graph.user" in key or "microsoft.graph.group" in key for key in requests)


def test_intune_is_read_since_the_last_read_with_a_margin(builder, use_tenant, settings):
    builder.device()
    use_tenant(builder)
    first = discover_now()
    tenant = use_tenant(builder)
    seen: list[str] = []
    original = tenant.handle

    def spy(method, url, headers, body):
        if "managedDevices" in url:
            seen.append(url)
        return original(method, url, headers, body)

    tenant.handle = spy

    discover_now()

    since = first.started_at.replace(microsecond=0) - timedelta(minutes=60)
    assert len(seen) == 1 and "lastSyncDateTime+gt+" + iso(since).replace(":", "%3A") in seen[0]
    assert "%24top=1000" in seen[0]  # Intune's page size, not the directory's 999


def test_changes_between_runs_are_read_through_delta(builder, use_tenant, tenant_of_three_groups):
    devices, finance, hosts = tenant_of_three_groups
    use_tenant(builder)
    discover_now()
    renamed = devices["direct"][0]
    renamed["displayName"] = "FIN-LT-RENAMED"
    builder.registration_group["members"].remove(devices["direct"][1]["id"])  # removed: stays registered
    newcomer = builder.device()  # added straight into the registration group
    builder.registration_group["members"].remove(hosts["id"])  # a nested group taken out
    upgraded = builder.device(member_of=finance, sku_number=101)
    tenant = use_tenant(builder)
    discover_now()
    builder.managed_device_of(upgraded).update(skuNumber=4, lastSyncDateTime=iso(builder.now))
    tenant = use_tenant(builder)
    tenant.requests.clear()

    run = discover_now()

    assert run.status == DiscoveryRun.Status.SUCCEEDED
    assert device(renamed).device_name == "FIN-LT-RENAMED"
    assert device(devices["direct"][1]).in_registration_group is False
    assert device(devices["direct"][1]).readiness_status == ReadinessStatus.ACTIVE
    assert device(newcomer).readiness_status == ReadinessStatus.ACTIVE
    assert device(devices["hosts"]).in_registration_group is False
    assert device(upgraded).readiness_status == ReadinessStatus.ACTIVE  # read as a change since the last run
    assert not DeltaLink.objects.filter(name=f"group:{hosts['id']}").exists()
    assert tenant.requests["GET /v1.0/groups/delta"] == 2 and tenant.requests["GET /v1.0/devices/delta"] == 1


def test_a_nested_group_added_later_is_read_in_full(builder, use_tenant):
    builder.device()
    use_tenant(builder)
    discover_now()
    pilot = builder.group("Autopatch - Pilot")
    laptops = [builder.device(member_of=pilot) for _ in range(3)]
    builder.registration_group["members"].append(pilot["id"])
    use_tenant(builder)

    run = discover_now()

    assert run.status == DiscoveryRun.Status.SUCCEEDED
    assert {device(d).added_through for d in laptops} == {"Autopatch - Pilot"}
    assert DeltaLink.objects.filter(name=f"group:{pilot['id']}").exists()


@pytest.fixture
def twelve_nested_groups(builder):
    """Twelve groups nested in the registration group, two devices in each."""
    groups = [builder.group(f"Autopatch - Site {n:02}", parent=builder.registration_group) for n in range(12)]
    return {group["id"]: [builder.device(member_of=group) for _ in range(2)] for group in groups}, groups


def test_nested_groups_share_one_delta_round_and_its_link(builder, use_tenant, twelve_nested_groups):
    members, groups = twelve_nested_groups
    use_tenant(builder)
    discover_now()
    tenant = use_tenant(builder)
    tenant.requests.clear()

    unchanged = discover_now()

    assert unchanged.status == DiscoveryRun.Status.SUCCEEDED and unchanged.counts["changed"] == 0
    # The registration group's round and one for its twelve nested groups: fewer than 10 requests in all.
    assert tenant.requests["GET /v1.0/groups/delta"] == 2 and unchanged.graph_requests <= 6
    links = set(DeltaLink.objects.filter(name__in=[f"group:{g['id']}" for g in groups]).values_list("link"))
    assert len(links) == 1

    moved = members[groups[3]["id"]][0]
    groups[3]["members"].remove(moved["id"])
    groups[9]["members"].append(moved["id"])
    gone = members[groups[5]["id"]][1]
    groups[5]["members"].remove(gone["id"])
    newcomer = builder.device(member_of=groups[7])
    tenant = use_tenant(builder)
    tenant.requests.clear()

    changed = discover_now()

    assert changed.status == DiscoveryRun.Status.SUCCEEDED
    assert tenant.requests["GET /v1.0/groups/delta"] == 2
    assert device(moved).added_through == "Autopatch - Site 09" and device(moved).in_registration_group
    assert device(gone).in_registration_group is False
    assert device(newcomer).readiness_status == ReadinessStatus.ACTIVE
    assert device(newcomer).added_through == "Autopatch - Site 07"
    untouched = members[groups[0]["id"]]
    assert all(device(d).in_registration_group for d in untouched)


def test_a_shared_round_that_fails_reads_each_group_on_its_own(builder, use_tenant, twelve_nested_groups):
    members, groups = twelve_nested_groups
    use_tenant(builder)
    discover_now()
    newcomer = builder.device(member_of=groups[11])
    tenant = use_tenant(builder)
    # The registration group's round reads fine; the nested groups' shared round is refused once.
    tenant.inject("/v1.0/groups/delta", 403, times=1, skip=1)

    run = discover_now()

    assert run.status == DiscoveryRun.Status.SUCCEEDED, run.errors
    assert tenant.requests["GET /v1.0/groups/delta"] == 1 + 1 + 12
    assert device(newcomer).readiness_status == ReadinessStatus.ACTIVE
    assert all(device(d).in_registration_group for group in members.values() for d in group)
    tenant = use_tenant(builder)
    tenant.requests.clear()
    assert discover_now().status == DiscoveryRun.Status.SUCCEEDED
    # Each group read on its own holds a link of its own: the next run lists them whole once, in one round.
    assert tenant.requests["GET /v1.0/groups/delta"] == 2
    assert all(device(d).in_registration_group for group in members.values() for d in group)


def test_an_expired_delta_link_starts_over_with_a_full_read(builder, use_tenant, tenant_of_three_groups):
    devices, _, _ = tenant_of_three_groups
    use_tenant(builder)
    discover_now()
    devices["direct"][0]["displayName"] = "AFTER-EXPIRY"
    tenant = use_tenant(builder)
    simulated_delta.expire_tokens(tenant.tenant_id)

    run = discover_now()

    assert run.status == DiscoveryRun.Status.SUCCEEDED
    assert run.counts["read_devices"] == len(builder.devices)  # read in full again
    assert tenant.requests["GET /v1.0/devices/delta"] == 2  # 410 Gone, then a new round
    assert device(devices["direct"][0]).device_name == "AFTER-EXPIRY"
    assert Device.objects.filter(readiness_status=ReadinessStatus.ACTIVE).count() == 4


def test_a_run_that_fails_keeps_the_old_links_so_the_next_run_sees_the_changes(builder, use_tenant):
    laptop = builder.device()
    use_tenant(builder)
    discover_now()
    links = dict(DeltaLink.objects.values_list("name", "link"))
    laptop["displayName"] = "CHANGED-ONCE"
    tenant = use_tenant(builder)
    tenant.inject("/beta/deviceManagement/managedDevices", 403, times=1)

    failed = discover_now()

    assert failed.status == DiscoveryRun.Status.FAILED
    assert dict(DeltaLink.objects.values_list("name", "link")) == links
    assert device(laptop).device_name != "CHANGED-ONCE"
    assert discover_now().status == DiscoveryRun.Status.SUCCEEDED
    assert device(laptop).device_name == "CHANGED-ONCE"


def test_a_daily_full_intune_read_sees_devices_deleted_from_intune(builder, use_tenant, settings):
    laptop = builder.device()
    use_tenant(builder)
    discover_now()
    builder.managed.remove(builder.managed_device_of(laptop))
    use_tenant(builder)
    discover_now()
    assert device(laptop).readiness_status == ReadinessStatus.ACTIVE  # not seen by a "synced since" read
    settings.AUTOPATCH_INTUNE_FULL_READ_HOURS = 0

    run = discover_now()

    assert run.counts["read_managed"] == len(builder.managed)
    assert device(laptop).readiness_status == ReadinessStatus.INACTIVE
    assert device(laptop).intune_device_id == "" or device(laptop).last_intune_checkin is None


def test_a_delta_run_evaluates_only_the_devices_whose_inputs_may_have_changed(builder, use_tenant):
    laptops = [builder.device(report=True) for _ in range(20)]
    use_tenant(builder)
    discover_now()
    builder.report(
        laptops[3]["deviceId"], {"Internet connectivity": "No route to the internet."}, age_hours=0
    )
    builder.managed_device_of(laptops[7]).update(
        osVersion="10.0.26100.9999", lastSyncDateTime=iso(builder.now)
    )
    use_tenant(builder)

    run = discover_now()

    assert run.counts["evaluated"] == 2 and run.counts["candidates"] == 20
    assert device(laptops[3]).readiness_status == ReadinessStatus.READINESS_FAILED
    assert device(laptops[7]).os_version == "10.0.26100.9999"
    assert Device.objects.filter(readiness_status=ReadinessStatus.ACTIVE).count() == 19


def test_a_renamed_nested_group_is_shown_on_its_devices(builder, use_tenant):
    finance = builder.group("Autopatch - Finance laptops", parent=builder.registration_group)
    laptop = builder.device(member_of=finance)
    builder.device()
    use_tenant(builder)
    discover_now()
    finance["displayName"] = "Autopatch - Finance devices"
    use_tenant(builder)

    run = discover_now()

    assert device(laptop).added_through == "Autopatch - Finance devices"
    assert run.counts["evaluated"] == 1


def test_a_device_whose_check_in_ages_past_28_days_between_runs_becomes_inactive(builder, use_tenant):
    import time

    ageing = builder.device(last_sync_days=28 - 4 / 86400)  # 28 days less four seconds
    use_tenant(builder)
    discover_now()
    assert device(ageing).readiness_status == ReadinessStatus.ACTIVE
    time.sleep(5)  # nothing changes in the tenant; only time passes

    run = discover_now()

    assert run.counts["evaluated"] == 1
    assert device(ageing).readiness_status == ReadinessStatus.INACTIVE


def test_list_blanks_are_looked_up_and_one_that_was_throttled_is_looked_up_again_next_run(
    builder, use_tenant
):
    filled = builder.device(list_blank=True)
    throttled = builder.device(list_blank=True)
    tenant = use_tenant(builder)
    # Every batch answers the second device 429 until the client gives up on it (5 retries).
    throttled_id = builder.managed_device_of(throttled)["id"]
    tenant.inject(f"/beta/deviceManagement/managedDevices/{throttled_id}", 429, times=6, retry_after="0")

    first = discover_now()

    assert first.status == DiscoveryRun.Status.PARTIAL
    assert any(throttled_id in error["message"] for error in first.errors)
    assert device(filled).architecture == "x64" and device(filled).edition == "Enterprise"
    assert device(throttled).readiness_status == ReadinessStatus.ACTIVE  # not failed on a blank not looked up
    assert "not reported" in str(device(throttled).checks)
    tenant.requests.clear()

    second = discover_now()  # nothing synced: the blank is looked up again all the same

    assert second.status == DiscoveryRun.Status.SUCCEEDED
    assert tenant.requests["POST /beta/$batch"] == 1
    assert device(throttled).architecture == "x64"
