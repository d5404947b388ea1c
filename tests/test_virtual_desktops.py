"""Windows 365 and Azure Virtual Desktop through discovery: the host pool's dynamic group, computed by the simulated
tenant from its membership rule, personal persistent VMs and Cloud PCs registered like physical devices, and
multi-session hosts refused with a reason that names multi-session."""

from __future__ import annotations

import pytest

from autopatch_portal.tenant.simulated.generator import (
    HOST_POOL_GROUP,
    HOST_POOL_RULE,
    MULTI_SESSION_SKU,
    WINDOWS_10_MULTI_SESSION_OS,
    add_virtual_desktops,
    iso,
)
from devices.models import Device, ReadinessStatus
from devices.runs import discover_now

pytestmark = pytest.mark.django_db


def device(named: str) -> Device:
    return Device.objects.get(device_name=named)


def graph_get(tenant, path: str) -> dict:
    import json

    answer = tenant.handle("GET", f"https://graph.microsoft.com{path}", auth_headers(tenant), None)
    assert answer.status == 200, answer.body
    return json.loads(answer.body)


def auth_headers(tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.issue_access_token()}"}


def test_the_dynamic_groups_members_are_the_directorys_devices_its_rule_matches(builder, use_tenant):
    group = builder.dynamic_group(HOST_POOL_GROUP, HOST_POOL_RULE, parent=builder.registration_group)
    personal = builder.device("AVD-AP-PD-001", member_of=None)
    windows_10_host = builder.device(
        "AVD-AP-MS-W10", member_of=None, operating_system=WINDOWS_10_MULTI_SESSION_OS
    )
    builder.device("FIN-LT-000001", member_of=None)
    tenant = use_tenant(builder)

    members = graph_get(tenant, f"/v1.0/groups/{group['id']}/members?$select=id,displayName")["value"]
    shown = graph_get(tenant, f"/v1.0/groups/{group['id']}?$select=groupTypes,membershipRule")

    assert [m["displayName"] for m in members] == [personal["displayName"]]
    assert windows_10_host["id"] not in [m["id"] for m in members]
    assert shown["groupTypes"] == ["DynamicMembership"] and shown["membershipRule"] == HOST_POOL_RULE


def test_a_paused_dynamic_group_keeps_the_members_its_file_lists(builder, use_tenant):
    group = builder.dynamic_group("Paused hosts", '(device.displayName -startsWith "AVD")')
    kept = builder.device("FIN-LT-000001", member_of=group)
    builder.device("AVD-AP-PD-001", member_of=None)
    group["membershipRuleProcessingState"] = "Paused"

    tenant = use_tenant(builder)

    assert tenant.groups[group["id"]]["members"] == [kept["id"]]


def test_a_tenant_file_with_a_malformed_rule_is_refused_with_the_position(builder, use_tenant):
    from autopatch_portal.tenant.simulated import TenantFileError

    builder.dynamic_group("Broken", '(device.displayName -eq "AP"')

    with pytest.raises(TenantFileError, match=r"Broken.*\(at character 29\)"):
        use_tenant(builder)


def test_session_hosts_and_cloud_pcs_are_discovered_through_the_host_pool_group(builder, use_tenant):
    add_virtual_desktops(builder)
    use_tenant(builder)

    discover_now()

    for name in ("AVD-AP-PD-001", "AVD-AP-PD-002", "CPC-megan-7K2QX"):
        assert device(name).readiness_status == ReadinessStatus.ACTIVE, name
        assert device(name).failed_checks == ""
    assert device("AVD-AP-PD-001").added_through == HOST_POOL_GROUP
    assert device("CPC-megan-7K2QX").added_through == "direct"
    host = device("AVD-AP-MS-001")
    assert host.readiness_status == ReadinessStatus.PREREQUISITES_FAILED
    assert host.failed_checks == "Windows edition"
    reason = next(c["reason"] for c in host.check_details if c["name"] == "Windows edition")
    assert "multi-session host" in reason and "does not support multi-session" in reason
    # The seed's rule leaves out the Windows 10 multi-session host: it is not a member, so not discovered.
    assert not Device.objects.filter(device_name="AVD-AP-MS-W10-01").exists()


def test_a_device_renamed_out_of_the_rule_leaves_the_group_at_the_next_run(builder, use_tenant):
    add_virtual_desktops(builder)
    use_tenant(builder)
    discover_now()
    host = next(d for d in builder.devices if d["displayName"] == "AVD-AP-MS-002")
    host["displayName"] = "POOL-MS-002"  # no longer contains "AP"
    fixed = next(d for d in builder.devices if d["displayName"] == "AVD-AP-MS-001")
    # Rebuilt as a personal Enterprise VM: Intune reports the new SKU at its next sync.
    builder.managed_device_of(fixed).update(skuNumber=4, lastSyncDateTime=iso(builder.now))
    use_tenant(builder)

    discover_now()

    assert Device.objects.get(azure_ad_device_id=host["deviceId"]).in_registration_group is False
    assert device("AVD-AP-MS-001").readiness_status in (
        ReadinessStatus.ACTIVE,
        ReadinessStatus.READINESS_FAILED,
    )


def test_a_multi_session_sku_is_named_multi_session_whatever_entra_calls_the_os(builder, use_tenant):
    host = builder.device("POOL-01", sku_number=MULTI_SESSION_SKU)
    use_tenant(builder)

    discover_now()

    reason = next(c for c in device("POOL-01").check_details if c["name"] == "Windows edition")
    assert "Azure Virtual Desktop session host" in reason["reason"]
    assert "multi-session" in reason["remediation"]
    assert device("POOL-01").azure_ad_device_id == host["deviceId"]


def test_the_demo_tenant_holds_the_seeds_azure_virtual_desktop_example(settings):
    from autopatch_portal.tenant.connection import DEMO_TENANT_FILE

    settings.AUTOPATCH_TENANT_FILE = str(DEMO_TENANT_FILE)

    discover_now()

    statuses = dict(
        Device.objects.filter(device_name__regex=r"^(AVD|CPC)-").values_list(
            "device_name", "readiness_status"
        )
    )
    assert statuses == {
        "AVD-AP-PD-001": ReadinessStatus.ACTIVE,
        "AVD-AP-PD-002": ReadinessStatus.ACTIVE,
        "AVD-AP-MS-001": ReadinessStatus.PREREQUISITES_FAILED,
        "AVD-AP-MS-002": ReadinessStatus.PREREQUISITES_FAILED,
        "CPC-megan-7K2QX": ReadinessStatus.ACTIVE,
    }
    assert set(
        Device.objects.filter(device_name__startswith="AVD-AP-PD").values_list("added_through", flat=True)
    ) == {HOST_POOL_GROUP}
