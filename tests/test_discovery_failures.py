"""Discovery when the tenant misbehaves: throttling, 5xx, time-outs, malformed pages, bad files, overlap."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from autopatch_portal.tenant.simulated.generator import iso
from devices.discovery import acquire_lease, active_run, run_discovery
from devices.models import Device, DiscoveryLease, DiscoveryRun, ReadinessStatus
from devices.runs import discover_now, start_discovery

pytestmark = pytest.mark.django_db

MANAGED = "/beta/deviceManagement/managedDevices"


@pytest.fixture(autouse=True)
def quick_retries(settings):
    settings.AUTOPATCH_GRAPH_MAX_RETRIES = 3
    settings.AUTOPATCH_GRAPH_BACKOFF_MS = 10


def registered(builder, use_tenant, n=3):
    devices = [builder.device() for _ in range(n)]
    tenant = use_tenant(builder)
    assert discover_now().status == DiscoveryRun.Status.SUCCEEDED
    return devices, tenant


def snapshot() -> dict[str, tuple]:
    return {d.azure_ad_device_id: (d.readiness_status, d.fingerprint) for d in Device.objects.all()}


def test_throttling_that_clears_is_waited_out_and_the_run_succeeds(builder, use_tenant):
    builder.device()
    tenant = use_tenant(builder)
    tenant.inject(MANAGED, 429, times=2, retry_after="0.05")

    run = discover_now()

    assert run.status == DiscoveryRun.Status.SUCCEEDED
    assert Device.objects.filter(readiness_status=ReadinessStatus.ACTIVE).count() == 1
    assert tenant.requests[f"GET {MANAGED}"] == 3
    # run states, group lookup, members, devices, and managed devices three times
    assert run.graph_requests == 7


def test_throttling_that_does_not_clear_fails_the_run_changes_nothing_and_the_next_run_completes(
    builder, use_tenant
):
    (first, *_), tenant = registered(builder, use_tenant)
    builder.managed_device_of(first)["lastSyncDateTime"] = "2020-01-01T00:00:00Z"
    newcomer = builder.device()
    tenant = use_tenant(builder)
    before = snapshot()
    tenant.inject(MANAGED, 429, times=50, retry_after="0.01")

    failed = discover_now()

    assert failed.status == DiscoveryRun.Status.FAILED
    assert "429" in failed.errors[0]["message"] and "gave up after 4 attempts" in failed.errors[0]["message"]
    assert snapshot() == before
    assert not Device.objects.filter(azure_ad_device_id=newcomer["deviceId"]).exists()

    tenant.faults.clear()
    completed = discover_now()

    assert completed.status == DiscoveryRun.Status.SUCCEEDED
    assert (
        Device.objects.get(azure_ad_device_id=newcomer["deviceId"]).readiness_status == ReadinessStatus.ACTIVE
    )
    assert (
        Device.objects.get(azure_ad_device_id=first["deviceId"]).readiness_status == ReadinessStatus.INACTIVE
    )


@pytest.mark.parametrize("fault", [500, 503, "timeout", "malformed"])
def test_transient_failures_are_retried(builder, use_tenant, fault):
    builder.device()
    tenant = use_tenant(builder)
    tenant.inject("/v1.0/devices", fault, times=2)

    run = discover_now()

    assert run.status == DiscoveryRun.Status.SUCCEEDED
    assert Device.objects.count() == 1


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (503, "Graph answered 503 ServiceUnavailable"),
        ("malformed", "malformed page"),
        ("timeout", "did not answer"),
    ],
)
def test_a_failure_that_persists_on_a_later_page_changes_nothing(
    builder, use_tenant, settings, fault, message
):
    devices, tenant = registered(builder, use_tenant, n=5)
    for d in devices:  # each device went back to an unsupported build, then synced
        builder.managed_device_of(d).update(osVersion="10.0.17134.1", lastSyncDateTime=iso(builder.now))
    tenant = use_tenant(builder)
    before = snapshot()
    # The first page of managed devices reads fine; the next one keeps failing.
    tenant.inject(MANAGED, fault, times=50, skip=1)
    settings.AUTOPATCH_INTUNE_PAGE_SIZE = 2

    run = discover_now()

    assert run.status == DiscoveryRun.Status.FAILED
    assert message in run.errors[0]["message"]
    assert snapshot() == before


def test_a_nested_group_that_cannot_be_read_leaves_its_devices_as_they_were(builder, use_tenant, settings):
    nested = builder.group("Autopatch - Finance laptops", parent=builder.registration_group)
    direct = builder.device()
    in_nested = builder.device(member_of=nested)
    tenant = use_tenant(builder)
    discover_now()
    settings.AUTOPATCH_INTUNE_FULL_READ_HOURS = 0  # a check-in time that goes back is seen by a full read
    builder.managed_device_of(direct)["skuNumber"] = 121
    builder.managed_device_of(in_nested)["lastSyncDateTime"] = "2020-01-01T00:00:00Z"
    newcomer = builder.device(member_of=nested)
    tenant = use_tenant(builder)
    # The registration group's delta round comes first and reads fine; the nested group's round keeps failing.
    tenant.inject("/v1.0/groups/delta", 500, times=50, skip=1)

    partial = discover_now()

    assert partial.status == DiscoveryRun.Status.PARTIAL
    assert "Autopatch - Finance laptops" in partial.errors[0]["stage"]
    assert not Device.objects.filter(azure_ad_device_id=newcomer["deviceId"]).exists()
    kept = Device.objects.get(azure_ad_device_id=in_nested["deviceId"])
    assert kept.in_registration_group and kept.added_through == "Autopatch - Finance laptops"

    tenant.faults.clear()
    assert discover_now().status == DiscoveryRun.Status.SUCCEEDED
    assert (
        Device.objects.get(azure_ad_device_id=newcomer["deviceId"]).readiness_status == ReadinessStatus.ACTIVE
    )
    assert (
        Device.objects.get(azure_ad_device_id=in_nested["deviceId"]).readiness_status
        == ReadinessStatus.INACTIVE
    )


def test_graph_errors_are_reported_in_plain_words(builder, use_tenant):
    builder.device()
    tenant = use_tenant(builder)
    tenant.inject(MANAGED, 403, times=1)

    run = discover_now()

    assert run.status == DiscoveryRun.Status.FAILED
    message = run.errors[0]["message"]
    assert "Graph answered 403" in message and "managedDevices" in message and "request-id" in message
    assert Device.objects.count() == 0


def test_refused_app_credentials_fail_the_run_with_entra_message(builder, use_tenant):
    builder.device()
    tenant = use_tenant(builder, deploy=False)  # deploying would leave a valid token in the app's cache
    tenant.client_credentials = {"someone-else": "secret"}

    run = discover_now()

    assert run.status == DiscoveryRun.Status.FAILED
    assert "invalid_client" in run.errors[0]["message"]


def test_a_tenant_file_of_the_wrong_shape_fails_the_run_with_what_is_wrong(tmp_path, settings):
    bad = tmp_path / "tenant.json"
    bad.write_text('{"groups": [], "devices": []}')
    settings.AUTOPATCH_TENANT_FILE = str(bad)

    run = discover_now()

    assert run.status == DiscoveryRun.Status.FAILED
    assert "lacks registrationGroupId, managedDevices" in run.errors[0]["message"]


def test_a_malformed_readiness_report_is_rejected_alone(builder, use_tenant):
    good = builder.device(report=True)
    data = builder.as_json()
    data["readinessReports"].append({"azureADDeviceId": "x", "generatedDateTime": "yesterday", "checks": []})
    use_tenant(data)

    run = discover_now()

    assert run.status == DiscoveryRun.Status.PARTIAL
    assert "generatedDateTime" in run.errors[0]["message"]
    assert Device.objects.get(azure_ad_device_id=good["deviceId"]).report_generated_at is not None


def test_a_missing_registration_group_is_named(builder, use_tenant):
    data = builder.as_json()
    data["groups"][0]["displayName"] = "Some other group"
    use_tenant(
        data, deploy=False
    )  # the script is assigned to the registration group, which this tenant lacks

    run = discover_now()

    assert run.status == DiscoveryRun.Status.FAILED
    assert "no group named 'Windows Autopatch Device Registration'" in run.errors[0]["message"]


def test_two_runs_never_overlap(builder, use_tenant):
    builder.device()
    use_tenant(builder)
    holder = DiscoveryRun.objects.create(
        trigger=DiscoveryRun.Trigger.SCHEDULE, status=DiscoveryRun.Status.RUNNING
    )
    assert acquire_lease(holder)

    second = run_discovery(DiscoveryRun.objects.create(trigger=DiscoveryRun.Trigger.MANUAL))

    assert second.status == DiscoveryRun.Status.COVERED and second.covered_by == holder
    assert f"#{holder.pk} (hourly schedule) was under way" in second.errors[0]["message"]
    assert Device.objects.count() == 0


def test_the_lease_of_a_crashed_worker_lapses(builder, use_tenant):
    builder.device()
    use_tenant(builder)
    crashed = DiscoveryRun.objects.create(
        trigger=DiscoveryRun.Trigger.SCHEDULE, status=DiscoveryRun.Status.RUNNING
    )
    assert acquire_lease(crashed)
    DiscoveryLease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    run = discover_now()

    assert run.status == DiscoveryRun.Status.SUCCEEDED
    crashed.refresh_from_db()
    assert crashed.status == DiscoveryRun.Status.FAILED
    assert "lease lapsed" in crashed.errors[0]["message"]
    assert DiscoveryLease.objects.get().holder is None


def test_a_second_press_while_a_run_is_going_returns_that_run(
    builder, use_tenant, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first, started = start_discovery(DiscoveryRun.Trigger.MANUAL, requested_by="alice")
        again, started_again = start_discovery(DiscoveryRun.Trigger.MANUAL, requested_by="bob")

    assert started and not started_again
    assert again.pk == first.pk
    assert active_run().pk == first.pk
    assert len(callbacks) == 1  # one task queued


def test_a_run_read_as_it_ends_is_either_still_running_or_over_never_both(alice):
    """The status panel reads a run's status and whether it is in progress at once: a run that ends between two
    reads must not show as "running" with nothing left to follow (the panel would stop polling on it)."""
    from devices.discovery.lease import begin, release_lease
    from tests.portal_client import signed_in

    run = DiscoveryRun.objects.create(trigger=DiscoveryRun.Trigger.MANUAL, requested_by="alice")
    assert begin(run, timezone.now())
    seen = run.reread()
    # The run ends (as `finish` ends it) after the panel's read.
    DiscoveryRun.objects.filter(pk=run.pk).update(
        status=DiscoveryRun.Status.SUCCEEDED, finished_at=timezone.now()
    )
    release_lease(run)

    assert (seen.status, seen.is_active) == (DiscoveryRun.Status.RUNNING, True)
    now = run.reread()
    assert (now.status, now.is_active) == (DiscoveryRun.Status.SUCCEEDED, False)
    panel = signed_in(alice).get(f"/devices/discover/{run.pk}/", headers={"HX-Request": "true"})
    assert f"Discovery run #{run.pk} succeeded" in panel.content.decode()
    assert "hx-trigger" not in panel.content.decode()
