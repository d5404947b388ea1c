"""The threads a run writes with (PostgreSQL, outside a transaction): the one that writes evaluated chunks, the
one that reads the next chunk meanwhile, the one that applies each completed stream to the tenant copy while the
others are read, and the one that reads the readiness script's results meanwhile. A failure ends the run
plainly, changes nothing a finished reading would not have, and leaves neither thread nor lease behind."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection
from django.utils import timezone

from autopatch_portal.tenant.simulated import delta as simulated_delta
from autopatch_portal.tenant.simulated.generator import make_tenant
from devices.discovery.evaluation import CHUNK
from devices.discovery.reading import DEVICES, Completed, CopyApplier, stage
from devices.discovery.writer import RUN_SETTINGS
from devices.models import (
    DeltaLink,
    Device,
    DeviceStatusChange,
    DiscoveryRun,
    ObjectKind,
    ReadinessStatus,
    StagedObject,
    TenantObject,
)
from devices.runs import discover_now

from .refusals import devices_refused

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the writer thread is PostgreSQL's"),
    pytest.mark.django_db(transaction=True),
]


def writer_threads() -> list[str]:
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith(
            (
                "discovery-writer",
                "discovery-copy",
                "discovery-readiness",
                "discovery-reader",
                "discovery-indexes",
            )
        )
    ]


def test_a_chunk_the_database_refuses_fails_the_run_and_the_next_run_writes_every_device(builder, use_tenant):
    for _ in range(CHUNK + 10):  # two chunks: the refused device is in the second
        builder.device()
    refused = builder.device("REFUSED-01")
    members = builder.registration_group["members"]
    last = "ffffffff-ffff-4fff-bfff-ffffffffffff"  # candidates are evaluated in object ID order
    members[members.index(refused["id"])] = refused["id"] = last
    use_tenant(builder)
    with devices_refused("NEW.device_name = 'REFUSED-01'", "the database refused REFUSED-01"):
        with pytest.raises(Exception, match="the database refused REFUSED-01"):
            discover_now()
        run = DiscoveryRun.objects.get()
        assert run.status == DiscoveryRun.Status.FAILED
        assert run.finished_at is not None
        assert [e["stage"] for e in run.errors] == ["internal"]
        assert "the database refused REFUSED-01" in run.errors[0]["message"]
        assert writer_threads() == []
        # The first chunk's write was its own transaction, with its history; the second wrote nothing.
        assert Device.objects.count() == CHUNK
        assert DeviceStatusChange.objects.count() == CHUNK

    again = discover_now()  # the lease was given back: this run is not covered by the failed one

    assert again.pk != run.pk and again.status == DiscoveryRun.Status.SUCCEEDED
    assert Device.objects.count() == CHUNK + 11
    assert Device.objects.filter(device_name="REFUSED-01", readiness_status=ReadinessStatus.ACTIVE).exists()
    assert not Device.objects.filter(readiness_status="").exists()
    assert writer_threads() == []


def tenant_copy() -> set[tuple]:
    return set(TenantObject.objects.values_list("kind", "group_id", "object_id", "device_id", "display_name"))


def delta_links() -> set[tuple]:
    return set(DeltaLink.objects.values_list("name", "link", "full_read_at"))


def staged_device(run: DiscoveryRun) -> Completed:
    stage(run, [(ObjectKind.DEVICE, "", "new-object", "new-device", "NEW-01", "", "", "{}", False)])
    return Completed(
        DEVICES, full=True, link="https://graph.microsoft.com/v1.0/devices/delta?$deltatoken=next"
    )


@pytest.fixture
def one_scope_applied(builder, use_tenant):
    """A discovered tenant, its copy and delta links as they are, and a reading whose devices scope the applier's
    thread has applied, in its open transaction."""
    builder.device()
    use_tenant(builder)
    assert discover_now().status == DiscoveryRun.Status.SUCCEEDED
    copy, links = tenant_copy(), delta_links()
    run = DiscoveryRun.objects.create()
    applier = CopyApplier(run, timezone.now())
    assert applier.thread is not None
    applier.scope_completed(staged_device(run))
    applier.applied[0].result()
    return applier, copy, links


def test_a_scope_applied_while_others_are_read_is_seen_only_once_the_reading_finishes(
    one_scope_applied, builder
):
    applier, copy, links = one_scope_applied

    assert tenant_copy() == copy and delta_links() == links
    applier.finish({builder.registration_group["id"]})
    applier.close()

    devices = {row for row in tenant_copy() if row[0] == ObjectKind.DEVICE}
    assert devices == {(ObjectKind.DEVICE, "", "new-object", "new-device", "NEW-01")}  # a full read replaces
    assert {row for row in tenant_copy() if row[0] != ObjectKind.DEVICE} == {
        row for row in copy if row[0] != ObjectKind.DEVICE
    }
    assert DeltaLink.objects.get(name=DEVICES).link.endswith("$deltatoken=next")
    assert writer_threads() == []


def test_a_reading_that_does_not_finish_leaves_the_copy_as_it_was_with_a_scope_applied_already(
    one_scope_applied,
):
    applier, copy, links = one_scope_applied

    applier.close()  # another stream failed: no finish

    assert tenant_copy() == copy and delta_links() == links
    assert writer_threads() == []


def test_a_stream_that_fails_after_the_others_completed_changes_neither_copy_nor_devices(
    builder, use_tenant, settings
):
    settings.AUTOPATCH_GRAPH_MAX_RETRIES = 3
    settings.AUTOPATCH_GRAPH_BACKOFF_MS = 10
    for _ in range(30):
        builder.device()
    tenant = use_tenant(builder)
    assert discover_now().status == DiscoveryRun.Status.SUCCEEDED
    renamed = builder.devices[0]
    renamed["displayName"] = "RENAMED-01"
    tenant = use_tenant(builder)
    copy, links = tenant_copy(), delta_links()
    devices = set(Device.objects.values_list("device_name", "readiness_status", "fingerprint"))
    # Intune (read whole this time) fails from its second page on, while the devices and members complete.
    settings.AUTOPATCH_INTUNE_FULL_READ_HOURS = 0
    settings.AUTOPATCH_INTUNE_PAGE_SIZE = 2
    tenant.inject("/beta/deviceManagement/managedDevices", 503, times=50, skip=1)

    run = discover_now()

    assert run.status == DiscoveryRun.Status.FAILED
    assert "503" in run.errors[0]["message"]
    assert tenant_copy() == copy
    # The readiness script's results are read before the streams and kept on their own (remediation.results).
    assert {k for k in delta_links() if not k[0].startswith("readiness")} == {
        k for k in links if not k[0].startswith("readiness")
    }
    assert set(Device.objects.values_list("device_name", "readiness_status", "fingerprint")) == devices
    assert writer_threads() == []


def test_the_readiness_scripts_results_are_read_while_the_tenant_is_and_count_in_the_evaluation(
    builder, use_tenant, settings
):
    devices = [builder.device() for _ in range(4)]
    for device in devices[1:]:
        builder.report(device["deviceId"], {})
    builder.report(
        devices[0]["deviceId"], {"Internet connectivity": "Microsoft's endpoints cannot be reached"}
    )
    settings.AUTOPATCH_INTUNE_PAGE_SIZE = 1  # a run state a page: four requests, one after the other
    settings.AUTOPATCH_SIMULATED_LATENCY_MS = 100
    tenant = use_tenant(builder)
    answered: list[tuple[str, float]] = []
    handle = tenant.handle

    def timed(method, url, headers, body):
        try:
            return handle(method, url, headers, body)
        finally:
            answered.append((url, time.monotonic()))

    tenant.handle = timed

    run = discover_now()

    assert run.status == DiscoveryRun.Status.SUCCEEDED, run.errors
    assert run.counts["read_run_states"] == 4
    run_states = [at for url, at in answered if "deviceRunStates" in url]
    devices_delta = [at for url, at in answered if "/v1.0/devices/delta" in url]
    assert len(run_states) == 4 and devices_delta
    assert devices_delta[0] < run_states[-1]  # the streams did not wait for the run states
    # The reports were taken in before the evaluation: the failing one counts.
    failing = Device.objects.get(azure_ad_device_id=devices[0]["deviceId"])
    assert failing.readiness_status == ReadinessStatus.READINESS_FAILED
    assert Device.objects.filter(readiness_status=ReadinessStatus.ACTIVE).count() == 3
    assert writer_threads() == []


def device_row(object_id: str, name: str, removed: bool = False) -> tuple:
    data = "" if removed else f'{{"id": "{object_id}", "deviceId": "d-{object_id}", "displayName": "{name}"}}'
    return (ObjectKind.DEVICE, "", object_id, f"d-{object_id}", name, "", "", data, removed)


def test_a_full_read_copied_page_by_page_replaces_its_scope_once_the_reading_finishes(builder, use_tenant):
    builder.device()
    use_tenant(builder)
    assert discover_now().status == DiscoveryRun.Status.SUCCEEDED
    copy, links = tenant_copy(), delta_links()
    run = DiscoveryRun.objects.create()
    applier = CopyApplier(run, timezone.now(), copied={DEVICES})
    # Graph may list an object again later in a round (its later listing wins), and list one as removed.
    assert (
        applier.copy_page(
            DEVICES, [device_row("a", "A-01"), device_row("b", "B-01"), device_row("c", "C-01")]
        )
        == []
    )
    assert applier.copy_page(DEVICES, [device_row("b", "B-02"), device_row("c", "", removed=True)]) == []
    applier.scope_completed(
        Completed(DEVICES, full=True, link="https://graph.microsoft.com/v1.0/devices/delta?$deltatoken=next")
    )
    for page in list(applier.pages) + applier.applied:
        page.result()

    assert tenant_copy() == copy and delta_links() == links  # not before the reading finishes
    applier.finish({builder.registration_group["id"]})
    applier.close()

    assert {row for row in tenant_copy() if row[0] == ObjectKind.DEVICE} == {
        (ObjectKind.DEVICE, "", "a", "d-a", "A-01"),
        (ObjectKind.DEVICE, "", "b", "d-b", "B-02"),
    }
    assert {row for row in tenant_copy() if row[0] != ObjectKind.DEVICE} == {
        row for row in copy if row[0] != ObjectKind.DEVICE
    }
    assert DeltaLink.objects.get(name=DEVICES).link.endswith("$deltatoken=next")
    assert not StagedObject.objects.filter(run=run).exists()  # written once, not staged
    assert writer_threads() == []


def test_a_reading_that_does_not_finish_leaves_the_copy_as_it_was_with_pages_copied_already(
    builder, use_tenant
):
    builder.device()
    use_tenant(builder)
    discover_now()
    copy = tenant_copy()
    applier = CopyApplier(DiscoveryRun.objects.create(), timezone.now(), copied={DEVICES})
    applier.copy_page(DEVICES, [device_row("a", "A-01")])
    applier.pages[0].result()

    applier.close()  # another stream failed

    assert tenant_copy() == copy
    assert writer_threads() == []


def test_only_the_scopes_it_copies_are_copied_and_a_groups_own_row_is_staged(builder, use_tenant):
    use_tenant(builder)
    applier = CopyApplier(DiscoveryRun.objects.create(), timezone.now(), copied={"group:g1"})
    group = (ObjectKind.GROUP, "", "g1", "", "Group one", "", "", "", False)
    member = (ObjectKind.MEMBER, "g1", "m1", "", "", "", "#microsoft.graph.device", "", False)
    try:
        assert applier.copy_page("group:g1", [group, member]) == [group]
        assert applier.copy_page("group:g2", [member]) == [member]
        assert applier.copy_page(DEVICES, [device_row("a", "A-01")]) == [device_row("a", "A-01")]
    finally:
        applier.close()


def test_a_first_run_copies_every_record_and_member_of_the_tenant(use_tenant):
    tenant = make_tenant(300, seed=7)
    use_tenant(tenant)

    assert discover_now().status in (DiscoveryRun.Status.SUCCEEDED, DiscoveryRun.Status.PARTIAL)

    copy = TenantObject.objects
    assert set(copy.filter(kind=ObjectKind.DEVICE).values_list("object_id", flat=True)) == {
        d["id"] for d in tenant.devices
    }
    assert set(copy.filter(kind=ObjectKind.MANAGED).values_list("object_id", flat=True)) == {
        m["id"] for m in tenant.managed if m.get("azureADDeviceId")
    }
    group = tenant.registration_group
    assert set(
        copy.filter(kind=ObjectKind.MEMBER, group_id=group["id"]).values_list("object_id", flat=True)
    ) == set(group["members"])
    assert writer_threads() == []


def session_settings() -> dict[str, str]:
    with connection.cursor() as cursor:
        return {name: show(cursor, name) for name in RUN_SETTINGS}


def show(cursor, name: str) -> str:
    cursor.execute(f"SHOW {name}")
    return cursor.fetchone()[0]


def test_a_run_leaves_the_settings_of_the_connection_it_ran_in_as_they_were(builder, use_tenant):
    """A worker's connection outlives the run (and runs other tasks): what the run set on it (RUN_SETTINGS) is
    set back, for a run that succeeds as for one that fails."""
    for _ in range(3):
        builder.device()
    builder.device("REFUSED-01")
    use_tenant(builder)
    before = session_settings()
    assert before != RUN_SETTINGS  # the server's own

    with devices_refused("NEW.device_name = 'REFUSED-01'", "the database refused REFUSED-01"):
        with pytest.raises(Exception, match="the database refused REFUSED-01"):
            discover_now()
    assert session_settings() == before
    assert discover_now().status == DiscoveryRun.Status.SUCCEEDED
    assert session_settings() == before


def planned_staged_rows() -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [StagedObject._meta.db_table])
        return cursor.fetchone()[0]


def test_the_staged_scopes_are_planned_from_statistics_taken_once_they_are_staged(builder, use_tenant):
    use_tenant(builder)
    run = DiscoveryRun.objects.create()
    applier = CopyApplier(run, timezone.now(), copied={DEVICES})
    try:
        applier.copy_page(DEVICES, [device_row("a", "A-01")])  # the copy's thread begins with a copied page
        applier.pages[0].result()
        member = (ObjectKind.MEMBER, "g2", "", "", "", "", "#microsoft.graph.device", "", False)
        stage(run, [(*member[:2], f"m{i}", *member[3:]) for i in range(500)])  # a nested group, staged after
        applier.scope_completed(Completed("group:g2", full=True))
        applier.applied[0].result()

        # In the reading's transaction, where the members were inserted from staging: planned from 500 rows, not
        # from the empty staging of the first page (a nested group's members then took minutes at 100,000 devices).
        assert applier.thread is not None
        assert applier.thread.submit(planned_staged_rows).result() >= 500
    finally:
        applier.close()


def test_a_full_read_after_an_expired_link_replaces_the_copy_of_what_it_lists(builder, use_tenant):
    kept, renamed, deleted = builder.device(), builder.device(), builder.device()
    use_tenant(builder)
    assert discover_now().status == DiscoveryRun.Status.SUCCEEDED
    renamed["displayName"] = "AFTER-EXPIRY"
    builder.devices.remove(deleted)
    builder.registration_group["members"].remove(deleted["id"])
    tenant = use_tenant(builder)
    simulated_delta.expire_tokens(tenant.tenant_id)

    run = discover_now()

    assert run.status == DiscoveryRun.Status.SUCCEEDED
    assert tenant.requests["GET /v1.0/devices/delta"] == 2  # 410 Gone, then a full round, copied page by page
    names = dict(TenantObject.objects.filter(kind=ObjectKind.DEVICE).values_list("object_id", "display_name"))
    assert names == {kept["id"]: kept["displayName"], renamed["id"]: "AFTER-EXPIRY"}
    assert Device.objects.get(azure_ad_device_id=renamed["deviceId"]).device_name == "AFTER-EXPIRY"
    assert writer_threads() == []


def test_a_daily_full_intune_read_copied_page_by_page_drops_devices_deleted_from_intune(
    builder, use_tenant, settings
):
    laptops = [builder.device() for _ in range(3)]
    use_tenant(builder)
    discover_now()
    builder.managed.remove(builder.managed_device_of(laptops[0]))
    use_tenant(builder)
    settings.AUTOPATCH_INTUNE_FULL_READ_HOURS = 0
    settings.AUTOPATCH_INTUNE_PAGE_SIZE = 1  # one device a page

    discover_now()

    assert set(TenantObject.objects.filter(kind=ObjectKind.MANAGED).values_list("device_id", flat=True)) == {
        laptop["deviceId"] for laptop in laptops[1:]
    }
    assert writer_threads() == []
