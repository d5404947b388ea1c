"""Readiness reports reach discovery through the readiness script's run states (Intune Remediations, via Graph)."""

from __future__ import annotations

import pytest

from autopatch_portal.tenant.simulated.generator import make_tenant
from devices.models import DeltaLink, Device, DiscoveryRun, ReadinessReport, ReadinessScript, ReadinessStatus
from devices.readiness import ingest_reports
from devices.runs import discover_now

pytestmark = pytest.mark.django_db

RUN_STATES = "/beta/deviceManagement/deviceHealthScripts/{}/deviceRunStates"


def run_states_path() -> str:
    return RUN_STATES.format(ReadinessScript.objects.get().intune_id)


def outcomes() -> dict[str, tuple]:
    return {
        d.azure_ad_device_id: (d.readiness_status, d.failed_checks, d.checks, d.report_generated_at)
        for d in Device.objects.all()
    }


def forget_everything() -> None:
    for model in (Device, ReadinessReport, DeltaLink, DiscoveryRun, ReadinessScript):
        model.objects.all().delete()


def test_every_readiness_outcome_of_the_tenant_file_holds_device_by_device_through_graph(use_tenant):
    builder = make_tenant(400, seed=7)
    tenant = use_tenant(builder, deploy=False)
    # The way reports arrived before: the tenant file's reports straight into ingestion, then a run.
    ingest_reports(tenant.readiness_reports)
    assert discover_now().status == DiscoveryRun.Status.SUCCEEDED
    before = outcomes()
    forget_everything()

    use_tenant(builder)  # the readiness script deployed; its run states carry the same reports
    run = discover_now()

    assert run.status == DiscoveryRun.Status.SUCCEEDED
    assert run.counts["read_run_states"] == len({r["azureADDeviceId"] for r in tenant.readiness_reports})
    after = outcomes()
    assert after == before
    statuses = {status for status, *_ in after.values()}
    assert {ReadinessStatus.ACTIVE, ReadinessStatus.READINESS_FAILED} <= statuses


def test_run_states_are_read_across_pages_through_a_throttled_page(builder, use_tenant, settings):
    devices = [builder.device(report=True) for _ in range(5)]
    failing = builder.device(report={"Internet connectivity": "No route."})
    tenant = use_tenant(builder)
    settings.AUTOPATCH_INTUNE_PAGE_SIZE = 2
    tenant.inject(run_states_path(), 429, retry_after="0.01", skip=1)

    run = discover_now()

    assert run.status == DiscoveryRun.Status.SUCCEEDED
    assert tenant.requests[f"GET {run_states_path()}"] == 4  # three pages, the second one twice
    assert run.counts["read_run_states"] == 6
    for device in devices:
        assert (
            Device.objects.get(azure_ad_device_id=device["deviceId"]).readiness_status
            == ReadinessStatus.ACTIVE
        )
    assert (
        Device.objects.get(azure_ad_device_id=failing["deviceId"]).readiness_status
        == ReadinessStatus.READINESS_FAILED
    )


def test_a_bad_output_is_named_on_the_run_and_the_others_are_taken(builder, use_tenant):
    good = builder.device("GOOD-01", report=True)
    unknown = builder.device("ODD-02", report=True)
    long = builder.device("LONG-03", report=True)
    data = builder.as_json()
    for report in data["readinessReports"]:
        if report["azureADDeviceId"] == unknown["deviceId"]:
            report["checks"][0]["name"] = "Disk space"
        if report["azureADDeviceId"] == long["deviceId"]:
            for check in report["checks"]:
                check["detail"] = "x" * 400
    use_tenant(data)

    run = discover_now()

    assert run.status == DiscoveryRun.Status.PARTIAL
    messages = [e["message"] for e in run.errors]
    assert (
        f"Report rejected: {unknown['deviceId']} (ODD-02): unknown readiness check 'Disk space'" in messages
    )
    assert any(
        m.startswith(f"Report rejected: {long['deviceId']} (LONG-03): the output is cut short")
        for m in messages
    )
    assert ReadinessReport.objects.filter(azure_ad_device_id=good["deviceId"]).exists()
    assert not ReadinessReport.objects.filter(
        azure_ad_device_id__in=[unknown["deviceId"], long["deviceId"]]
    ).exists()


def test_an_unchanged_hourly_run_reads_only_run_states_updated_since_the_last_read(builder, use_tenant):
    builder.device(report=True, report_age_hours=30)
    builder.device(report=True, report_age_hours=20)
    use_tenant(builder)
    assert discover_now().counts["read_run_states"] == 2

    again = discover_now()

    assert again.counts["read_run_states"] == 0
    fresh = builder.device(report={"Internet connectivity": "No route."}, report_age_hours=0)
    use_tenant(builder)
    third = discover_now()
    assert third.counts["read_run_states"] == 1
    assert Device.objects.get(azure_ad_device_id=fresh["deviceId"]).readiness_status == (
        ReadinessStatus.READINESS_FAILED
    )


def test_a_refused_filter_reads_every_run_state_instead(builder, use_tenant):
    builder.device(report=True)
    builder.device(report=True)
    tenant = use_tenant(builder)
    discover_now()
    tenant.inject(run_states_path(), 400)

    run = discover_now()

    assert run.status == DiscoveryRun.Status.SUCCEEDED
    assert run.counts["read_run_states"] == 2


def test_run_states_that_cannot_be_read_are_named_and_the_run_goes_on(builder, use_tenant):
    device = builder.device(report=True)
    tenant = use_tenant(builder)
    tenant.inject(run_states_path(), 403)

    run = discover_now()

    assert run.status == DiscoveryRun.Status.PARTIAL
    assert "The readiness script's results could not be read" in run.errors[0]["message"]
    registered = Device.objects.get(azure_ad_device_id=device["deviceId"])
    assert registered.readiness_status == ReadinessStatus.ACTIVE
    assert registered.report_generated_at is None


def test_without_a_deployed_script_no_report_is_read(builder, use_tenant):
    device = builder.device(report={"Internet connectivity": "No route."})
    tenant = use_tenant(builder, deploy=False)

    run = discover_now()

    assert run.status == DiscoveryRun.Status.SUCCEEDED
    assert not [key for key in tenant.requests if "deviceHealthScripts" in key]
    registered = Device.objects.get(azure_ad_device_id=device["deviceId"])
    assert registered.readiness_status == ReadinessStatus.ACTIVE
    assert registered.status_changes.get().cause == (
        "Registered: every prerequisite check passed; readiness not reported yet"
    )


def test_a_script_gone_from_intune_is_named_with_what_to_do(builder, use_tenant):
    builder.device(report=True)
    tenant = use_tenant(builder)
    tenant.health_scripts.scripts.clear()
    tenant.health_scripts._save()

    run = discover_now()

    assert run.status == DiscoveryRun.Status.PARTIAL
    assert "The script is no longer in Intune: deploy it again" in run.errors[0]["message"]
