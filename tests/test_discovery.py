"""Discovery end to end: the real MSAL and Graph client over the simulated tenant, the real database."""

from __future__ import annotations

import pytest

from autopatch_portal.tenant.simulated.generator import iso, make_tenant
from devices.checks import PREREQUISITE_CHECKS
from devices.models import Device, DeviceStatusChange, DiscoveryRun, ReadinessStatus, Ring, RingAssignedBy
from devices.runs import discover_now

pytestmark = pytest.mark.django_db


def device(builder_device: dict) -> Device:
    return Device.objects.get(azure_ad_device_id=builder_device["deviceId"])


def failed(builder_device: dict) -> list[str]:
    return [name for name in device(builder_device).failed_checks.split("; ") if name]


def reasons(builder_device: dict) -> dict[str, str]:
    return {
        check["name"]: check["reason"]
        for check in device(builder_device).check_details
        if not check["passed"]
    }


def test_a_device_that_meets_every_prerequisite_is_registered_active_with_a_ring(builder, use_tenant):
    good = builder.device(report=True)
    use_tenant(builder)

    run = discover_now()

    assert run.status == DiscoveryRun.Status.SUCCEEDED
    registered = device(good)
    assert registered.readiness_status == ReadinessStatus.ACTIVE
    assert registered.registered_at is not None
    assert registered.ring in (Ring.FIRST, Ring.FAST, Ring.BROAD)
    assert registered.ring_assigned_by == RingAssignedBy.AUTOPATCH
    assert registered.failed_checks == ""
    prerequisites = [c["name"] for c in registered.check_details if c["kind"] == "prerequisite"]
    assert prerequisites == list(PREREQUISITE_CHECKS)
    assert registered.added_through == "direct"
    assert registered.azure_ad_device_id == good["deviceId"] != good["id"]


@pytest.mark.parametrize(
    ("kwargs", "check", "reason"),
    [
        ({"managed": False}, "Intune or Cloud-Attached", "no Intune managed device"),
        ({"management_agent": "configurationManagerClient"}, "Intune or Cloud-Attached", "neither by Intune"),
        ({"serial": "", "model": "", "manufacturer": ""}, "Intune or Cloud-Attached", "emulators"),
        ({"model": ""}, "Intune or Cloud-Attached", "no model"),
        ({"last_sync_days": 29}, "Last Intune check-in", "29 days ago"),
        ({"trust_type": "Workplace"}, "Windows, corporate-owned device", "Azure AD registered"),
        ({"owner_type": "personal"}, "Windows, corporate-owned device", "owned by 'personal'"),
        ({"sku_number": 101}, "Windows edition", "Windows Home"),
        ({"sku_number": 121}, "Windows edition", "Windows Education"),
        ({"sku_number": 175}, "Windows edition", "multi-session"),
        ({"os_version": "10.0.17134.1304"}, "Windows OS build and architecture", "10.0.17763"),
        ({"architecture": "arm64"}, "Windows OS build and architecture", "only x64"),
        ({"architecture": "x86"}, "Windows OS build and architecture", "only x64"),
        (
            {"management_agent": "configurationManagerClientMdm", "workloads": {"officeApps": False}},
            "Co-management workloads",
            "Office Click-to-Run apps",
        ),
        (
            {
                "management_agent": "configurationManagerClientMdm",
                "workloads": {"windowsUpdateForBusiness": False},
            },
            "Co-management workloads",
            "Windows Update policies",
        ),
    ],
)
def test_each_prerequisite_check_fails_with_a_reason_and_remediation(
    builder, use_tenant, kwargs, check, reason
):
    bad = builder.device(**kwargs)
    use_tenant(builder)

    discover_now()

    assert device(bad).readiness_status == ReadinessStatus.PREREQUISITES_FAILED
    assert device(bad).registered_at is None
    assert check in failed(bad)
    assert reason in reasons(bad)[check]
    remediation = {c["name"]: c["remediation"] for c in device(bad).check_details}[check]
    assert remediation


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sku_number": 4},
        {"sku_number": 48},
        {"sku_number": 161},
        {"sku_number": 49},
        {"sku_number": None, "sku_family": "Professional"},
        {"os_version": "10.0.17763.1"},
        {"os_version": "10.0.26100.3476"},
        {"management_agent": "configurationManagerClientMdm", "trust_type": "ServerAd"},
        {"trust_type": "ServerAd"},
        {"last_sync_days": 27},
    ],
)
def test_supported_editions_builds_joins_and_co_management_pass(builder, use_tenant, kwargs):
    good = builder.device(**kwargs)
    use_tenant(builder)

    discover_now()

    assert failed(good) == []
    assert device(good).readiness_status == ReadinessStatus.ACTIVE


def test_a_session_host_is_told_apart_by_its_azure_ad_operating_system_text(builder, use_tenant):
    host = builder.device(sku_number=None, sku_family="")
    host["operatingSystem"] = "Windows 10 Enterprise for Virtual Desktops"
    use_tenant(builder)

    discover_now()

    assert failed(host) == ["Windows edition"]
    assert "Azure Virtual Desktop session host" in reasons(host)["Windows edition"]
    assert device(host).edition == "Enterprise multi-session"


def test_every_failure_is_kept_not_only_the_first(builder, use_tenant):
    bad = builder.device(sku_number=101, architecture="arm64", last_sync_days=40, owner_type="personal")
    use_tenant(builder)

    discover_now()

    assert failed(bad) == [
        "Last Intune check-in",
        "Windows, corporate-owned device",
        "Windows edition",
        "Windows OS build and architecture",
    ]


def test_devices_sharing_a_serial_number_fail_unique_serial_number(builder, use_tenant):
    first = builder.device(serial="SN-SHARED")
    second = builder.device(serial="SN-SHARED")
    alone = builder.device(serial="SN-ALONE")
    use_tenant(builder)

    discover_now()

    assert failed(first) == failed(second) == ["Unique serial number"]
    assert "shared with 1 other device" in reasons(first)["Unique serial number"]
    assert failed(alone) == []


def test_a_new_device_with_the_serial_of_a_registered_one_fails(builder, use_tenant):
    registered = builder.device(serial="SN-1")
    use_tenant(builder)
    discover_now()
    newcomer = builder.device(serial="SN-1")
    use_tenant(builder)

    discover_now()

    assert device(registered).readiness_status == ReadinessStatus.ACTIVE
    assert failed(newcomer) == ["Unique serial number"]


def test_a_stale_registered_record_in_dual_state_fails_intune_or_cloud_attached(builder, use_tenant):
    hybrid = builder.device(name="FIN-LT-0042", trust_type="ServerAd")
    stale = builder.device(name="FIN-LT-0042", trust_type="Workplace", managed=False)
    use_tenant(builder)

    discover_now()

    assert device(hybrid).readiness_status == ReadinessStatus.ACTIVE
    assert "Intune or Cloud-Attached" in failed(stale)
    assert "dual state" in reasons(stale)["Intune or Cloud-Attached"]


def test_one_level_of_nesting_is_discovered_and_deeper_groups_and_users_are_ignored(builder, use_tenant):
    nested = builder.group("Autopatch - Finance laptops", parent=builder.registration_group)
    deeper = builder.group("Autopatch - Too deep", parent=nested)
    builder.user("Megan Bowen", member_of=builder.registration_group)
    direct = builder.device()
    via_nested = builder.device(member_of=nested)
    too_deep = builder.device(member_of=deeper)
    use_tenant(builder)

    run = discover_now()

    assert device(direct).added_through == "direct"
    assert device(via_nested).added_through == "Autopatch - Finance laptops"
    assert not Device.objects.filter(azure_ad_device_id=too_deep["deviceId"]).exists()
    ignored = {item["name"]: item for item in run.ignored}
    assert ignored["Autopatch - Too deep"]["type"] == "group"
    assert "one level of nesting" in ignored["Autopatch - Too deep"]["reason"]
    assert ignored["Megan Bowen"]["type"] == "user"
    assert run.counts["ignored_group"] == 1 and run.counts["ignored_user"] == 1
    assert run.counts["candidates"] == 2


def test_a_device_both_direct_and_nested_is_counted_once_as_direct(builder, use_tenant):
    nested = builder.group("Autopatch - Hybrid", parent=builder.registration_group)
    both = builder.device()
    nested["members"].append(both["id"])
    use_tenant(builder)

    run = discover_now()

    assert Device.objects.count() == 1
    assert device(both).added_through == "direct"
    assert run.counts["candidates"] == 1


@pytest.mark.parametrize(
    ("devices", "first_fast_broad"), [(20, (1, 3, 16)), (200, (10, 30, 160)), (300, (3, 27, 270))]
)
def test_rings_follow_5_15_80_up_to_200_devices_then_1_9_90_and_test_is_never_automatic(
    builder, use_tenant, devices, first_fast_broad
):
    for _ in range(devices):
        builder.device()
    use_tenant(builder)

    discover_now()

    rings = list(Device.objects.values_list("ring", flat=True))
    assert (rings.count(Ring.FIRST), rings.count(Ring.FAST), rings.count(Ring.BROAD)) == first_fast_broad
    assert Ring.TEST not in rings


def test_ring_assignment_is_deterministic(builder, use_tenant):
    for _ in range(50):
        builder.device()
    use_tenant(builder)
    discover_now()
    first = dict(Device.objects.values_list("azure_ad_device_id", "ring"))
    Device.objects.all().delete()

    discover_now()

    assert dict(Device.objects.values_list("azure_ad_device_id", "ring")) == first


def test_a_failed_readiness_report_makes_a_registered_device_readiness_failed(builder, use_tenant):
    gpo = builder.device(report={"Windows update policies managed via GPO": "Group Policy sets WUServer."})
    use_tenant(builder)

    discover_now()

    assert device(gpo).readiness_status == ReadinessStatus.READINESS_FAILED
    assert failed(gpo) == ["Windows update policies managed via GPO"]
    assert reasons(gpo)["Windows update policies managed via GPO"] == "Group Policy sets WUServer."
    assert device(gpo).report_generated_at is not None
    assert device(gpo).registered_at is not None


def test_a_report_that_arrives_before_registration_counts_once_registered_in_the_same_run(
    builder, use_tenant
):
    later = builder.device(member_of=None, report={"Internet connectivity": "No route."})
    use_tenant(builder)
    discover_now()
    assert not Device.objects.filter(azure_ad_device_id=later["deviceId"]).exists()
    builder.registration_group["members"].append(later["id"])
    use_tenant(builder)

    discover_now()

    assert device(later).registered_at is not None
    assert device(later).readiness_status == ReadinessStatus.READINESS_FAILED
    assert failed(later) == ["Internet connectivity"]


def test_inactive_wins_over_readiness_failed_and_the_history_keeps_each_change(builder, use_tenant, settings):
    laptop = builder.device(report={"Internet connectivity": "No route."})
    use_tenant(builder)
    discover_now()
    # A check-in time that goes back is no change Intune's "synced since" read can see: the daily full read does.
    settings.AUTOPATCH_INTUNE_FULL_READ_HOURS = 0
    builder.managed_device_of(laptop)["lastSyncDateTime"] = "2020-01-01T00:00:00Z"
    use_tenant(builder)

    discover_now()

    assert device(laptop).readiness_status == ReadinessStatus.INACTIVE
    assert failed(laptop) == ["Last Intune check-in", "Internet connectivity"]
    history = list(DeviceStatusChange.objects.filter(device=device(laptop)).order_by("changed_at", "id"))
    assert [(h.from_status, h.to_status) for h in history] == [
        ("", ReadinessStatus.READINESS_FAILED),
        (ReadinessStatus.READINESS_FAILED, ReadinessStatus.INACTIVE),
    ]
    assert "28 days" in history[1].cause
    assert history[1].run is not None


def test_removing_a_device_from_the_group_does_not_deregister_it(builder, use_tenant):
    kept = builder.device()
    use_tenant(builder)
    discover_now()
    builder.registration_group["members"].remove(kept["id"])
    use_tenant(builder)

    discover_now()

    assert device(kept).registered_at is not None
    assert device(kept).readiness_status == ReadinessStatus.ACTIVE
    assert device(kept).in_registration_group is False
    # It keeps the time it was last found in the group.
    assert device(kept).sighting.last_discovered_at < DiscoveryRun.objects.latest("pk").started_at


def test_last_discovered_is_the_time_of_the_last_run_that_found_the_device(builder, use_tenant):
    stays, leaves = builder.device(), builder.device()
    use_tenant(builder)

    def last_discovered() -> dict[str, object]:
        return dict(
            Device.objects.with_last_discovered().values_list("azure_ad_device_id", "last_discovered_at")
        )

    discover_now()
    second = discover_now()
    assert second.sightings_at == second.started_at
    assert last_discovered() == {stays["deviceId"]: second.started_at, leaves["deviceId"]: second.started_at}

    builder.registration_group["members"].remove(leaves["id"])
    use_tenant(builder)
    third = discover_now()
    assert last_discovered() == {stays["deviceId"]: third.started_at, leaves["deviceId"]: second.started_at}

    builder.registration_group["members"].append(leaves["id"])
    use_tenant(builder)
    fourth = discover_now()
    assert last_discovered() == {stays["deviceId"]: fourth.started_at, leaves["deviceId"]: fourth.started_at}


def test_an_unregistered_device_that_later_passes_is_registered(builder, use_tenant):
    late = builder.device(sku_number=101)
    use_tenant(builder)
    discover_now()
    assert device(late).readiness_status == ReadinessStatus.PREREQUISITES_FAILED
    builder.managed_device_of(late).update(
        skuNumber=4, lastSyncDateTime=iso(builder.now)
    )  # upgraded, then synced
    use_tenant(builder)

    run = discover_now()

    assert device(late).readiness_status == ReadinessStatus.ACTIVE
    assert run.counts["registered_now"] == 1
    causes = list(DeviceStatusChange.objects.filter(device=device(late)).values_list("cause", flat=True))
    assert any("Windows edition" in cause for cause in causes)
    assert any("every prerequisite check passed" in cause for cause in causes)


def test_an_excluded_device_is_not_registered_again(builder, use_tenant):
    laptop = builder.device()
    use_tenant(builder)
    discover_now()
    Device.objects.filter(azure_ad_device_id=laptop["deviceId"]).update(excluded=True)

    discover_now()

    assert device(laptop).readiness_status == ReadinessStatus.EXCLUDED


def test_a_second_run_with_nothing_changed_writes_nothing(builder, use_tenant):
    tenant = make_tenant(150, seed=3)
    use_tenant(tenant)
    first = discover_now()
    history = DeviceStatusChange.objects.count()

    second = discover_now()

    assert first.counts["changed"] > 100
    assert second.counts["changed"] == 0
    assert DeviceStatusChange.objects.count() == history
    kept = [*ReadinessStatus.values, "candidates"]
    assert {k: second.counts.get(k) for k in kept} == {k: first.counts.get(k) for k in kept}


def test_the_run_records_counts_trigger_times_and_graph_requests(builder, use_tenant):
    for _ in range(3):
        builder.device()
    builder.device(sku_number=101)
    use_tenant(builder)

    run = discover_now()

    assert run.trigger == DiscoveryRun.Trigger.COMMAND
    assert run.started_at <= run.finished_at
    assert run.counts[ReadinessStatus.ACTIVE] == 3
    assert run.counts[ReadinessStatus.PREREQUISITES_FAILED] == 1
    # members, devices and managed devices: one page each.
    assert run.graph_requests == 5  # and the readiness script's run states, one page


def test_a_sign_in_alone_does_not_make_discovery_evaluate_the_device_again(builder, use_tenant):
    laptop = builder.device()
    use_tenant(builder)
    discover_now()
    laptop["approximateLastSignInDateTime"] = "2030-01-01T00:00:00Z"
    use_tenant(builder)

    assert discover_now().counts["changed"] == 0
