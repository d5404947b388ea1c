"""A first import writes the device table without its declared indexes and builds them after (PostgreSQL): the run
ends with every index the blade reads, the same devices as a run that kept the indexes up, and a run that died
before building them leaves nothing missing once the next run starts. A first reading does the same with the
tenant copy, building its indexes in the reading's transaction."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from autopatch_portal.tenant.simulated.generator import make_tenant
from devices.discovery import indexes
from devices.models import Device, DeviceStatusChange, DiscoveryRun, ObjectKind, TenantObject
from devices.runs import discover_now

from .refusals import devices_refused

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the indexes are dropped on PostgreSQL only"
    ),
    pytest.mark.django_db(transaction=True),
]

# Every field a run writes, and what the database derives from them (the tab, the ring's order), but the times of
# the run and the input key that carries them.
OUTCOME = [
    f.attname
    for f in Device._meta.concrete_fields
    if f.attname not in ("id", "first_discovered_at", "registered_at", "fingerprint")
]


def device_index_names(model=Device) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [model._meta.db_table])
        return {name for (name,) in cursor.fetchall()}


def declared(model=Device) -> set[str]:
    """The indexes a first import drops and builds: the declared ones and the device table's search indexes."""
    return {index.name for index in indexes.deferrable(model)}


def outcomes() -> dict[str, tuple]:
    return {row[0]: row for row in Device.objects.values_list("azure_ad_device_id", *OUTCOME)}


def dropped_by(queries: CaptureQueriesContext, model=Device) -> set[str]:
    return {
        name
        for name in declared(model)
        if any(
            q["sql"].startswith("DROP INDEX") and f'"{name}"' in q["sql"] for q in queries.captured_queries
        )
    }


def test_a_first_import_builds_the_indexes_after_its_writes_and_finds_what_a_run_keeping_them_finds(
    use_tenant, settings
):
    tenant = make_tenant(300, seed=3)
    use_tenant(tenant)
    settings.AUTOPATCH_DEFER_INDEXES_FROM = 1_000_000  # the indexes kept up row by row
    with CaptureQueriesContext(connection) as kept:
        assert discover_now().status in (DiscoveryRun.Status.SUCCEEDED, DiscoveryRun.Status.PARTIAL)
    assert dropped_by(kept) == set()
    expected, history = outcomes(), DeviceStatusChange.objects.count()
    assert (
        len(expected) > 250
        and len({row[OUTCOME.index("readiness_status") + 1] for row in expected.values()}) == 3
    )

    call_command("flush", interactive=False, verbosity=0)  # the same tenant, imported again from nothing
    use_tenant(tenant)
    settings.AUTOPATCH_DEFER_INDEXES_FROM = 100
    with CaptureQueriesContext(connection) as deferred:
        assert discover_now().status in (DiscoveryRun.Status.SUCCEEDED, DiscoveryRun.Status.PARTIAL)

    assert dropped_by(deferred) == declared()
    assert {
        "device_name_trgm",
        "device_aad_id_upper_prefix",
    } < declared()  # the search's, made by a migration
    assert declared() <= device_index_names()
    assert outcomes() == expected
    assert DeviceStatusChange.objects.count() == history
    # The sightings, recorded while the indexes were built: every device found by this run.
    run = DiscoveryRun.objects.get()
    assert set(Device.objects.with_last_discovered().values_list("last_discovered_at", flat=True)) == {
        run.sightings_at
    }


def test_a_run_that_adds_devices_to_a_table_holding_some_keeps_the_indexes_up(use_tenant, settings):
    use_tenant(make_tenant(120, seed=4))
    settings.AUTOPATCH_DEFER_INDEXES_FROM = 1_000_000
    discover_now()
    Device.objects.filter(pk__in=list(Device.objects.values_list("pk", flat=True)[:60])).delete()
    settings.AUTOPATCH_DEFER_INDEXES_FROM = 10

    with CaptureQueriesContext(connection) as queries:
        discover_now()

    assert dropped_by(queries) == set()
    assert Device.objects.count() >= 110


def test_the_next_run_builds_the_indexes_a_run_that_died_left_missing(use_tenant, settings):
    use_tenant(make_tenant(50, seed=5))
    discover_now()
    gone = [
        index
        for index in indexes.deferrable(Device)
        if index.name in ("device_tab_model", "device_user_trgm")
    ]
    with connection.schema_editor(atomic=False) as editor:
        for index in gone:
            editor.remove_index(Device, index)
    assert {i.name for i in indexes.missing(Device)} == {"device_tab_model", "device_user_trgm"}

    assert discover_now().status in (DiscoveryRun.Status.SUCCEEDED, DiscoveryRun.Status.PARTIAL)

    assert indexes.missing(Device) == []
    assert declared() <= device_index_names()


def test_a_first_import_that_fails_still_builds_the_indexes(use_tenant, settings):
    use_tenant(make_tenant(50, seed=6))
    settings.AUTOPATCH_DEFER_INDEXES_FROM = 10
    with (
        devices_refused("NEW.readiness_status = 'active'", "the database refused a device"),
        CaptureQueriesContext(connection) as queries,
        pytest.raises(Exception, match="refused a device"),
    ):
        discover_now()

    assert DiscoveryRun.objects.get().status == DiscoveryRun.Status.FAILED
    assert dropped_by(queries) == declared()
    assert indexes.missing(Device) == []


# -- the tenant copy ---------------------------------------------------------------------------------------------


def test_a_first_reading_fills_the_copy_without_its_indexes_and_builds_them_before_it_commits(use_tenant):
    tenant = make_tenant(300, seed=7)
    use_tenant(tenant)
    with CaptureQueriesContext(connection) as queries:
        assert discover_now().status in (DiscoveryRun.Status.SUCCEEDED, DiscoveryRun.Status.PARTIAL)

    assert dropped_by(queries, TenantObject) == declared(TenantObject)
    assert indexes.missing(TenantObject) == []
    # What the copy then holds: test_discovery_writer's first run, which takes this path too.
    assert TenantObject.objects.filter(kind=ObjectKind.DEVICE).count() == len(tenant.devices)
    assert Device.objects.count() > 250  # evaluated from the copy read through its indexes

    with CaptureQueriesContext(connection) as queries:
        discover_now()  # the copy holds rows: its indexes stay up

    assert dropped_by(queries, TenantObject) == set()


def test_a_first_reading_that_fails_leaves_the_copy_empty_with_its_indexes(builder, use_tenant, settings):
    settings.AUTOPATCH_GRAPH_MAX_RETRIES = 1
    settings.AUTOPATCH_GRAPH_BACKOFF_MS = 10
    settings.AUTOPATCH_INTUNE_PAGE_SIZE = 2
    for _ in range(20):
        builder.device()
    tenant = use_tenant(builder)
    tenant.inject("/beta/deviceManagement/managedDevices", 503, times=50, skip=1)  # after the first page
    with CaptureQueriesContext(connection) as queries:
        run = discover_now()

    assert run.status == DiscoveryRun.Status.FAILED
    assert dropped_by(queries, TenantObject) == declared(TenantObject)
    assert not TenantObject.objects.exclude(kind=ObjectKind.GROUP).exists()
    assert indexes.missing(TenantObject) == []


def test_a_reading_builds_the_copys_indexes_a_reading_that_died_left_missing(use_tenant):
    use_tenant(make_tenant(50, seed=5))
    discover_now()
    names = {"tenant_object_device", "tenant_managed_serial"}
    with connection.schema_editor(atomic=False) as editor:
        for index in TenantObject._meta.indexes:
            if index.name in names:
                editor.remove_index(TenantObject, index)
    assert {i.name for i in indexes.missing(TenantObject)} == names

    assert discover_now().status in (DiscoveryRun.Status.SUCCEEDED, DiscoveryRun.Status.PARTIAL)

    assert indexes.missing(TenantObject) == []
