"""What a discovery leaves the database for the pages and runs after it: the tables it filled vacuumed, with their
visibility maps set, and their statistics taken, before autovacuum comes by (PostgreSQL)."""

from __future__ import annotations

import pytest
from django.db import connection

from devices.models import Device, DeviceSighting, DiscoveryRun, TenantObject
from devices.runs import discover_now

FILLED = (TenantObject, Device, DeviceSighting)


def all_visible_share(model) -> float:
    """The share of the table's pages its visibility map says are all visible (what VACUUM last found)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relpages, relallvisible FROM pg_class WHERE relname = %s", [model._meta.db_table]
        )
        pages, visible = cursor.fetchone()
    return visible / pages if pages else 0.0


@pytest.mark.skipif(connection.vendor != "postgresql", reason="VACUUM and visibility maps of PostgreSQL")
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "defer_from", [1_000_000, 100], ids=["indexes kept up row by row", "indexes built after the rows"]
)
def test_a_first_import_leaves_the_tables_it_filled_all_visible(builder, use_tenant, settings, defer_from):
    """A run commits without waiting for the disk; VACUUM right after its writes marked no page all-visible, so
    the group page and the next hourly run read every row of the tenant copy instead of its indexes alone. A
    first import that builds the device table's indexes after its rows vacuums the table before the builds."""
    settings.AUTOPATCH_DEFER_INDEXES_FROM = defer_from
    for _ in range(1100):  # past ANALYZE_AFTER: the run vacuums the device tables too
        builder.device(report=True)
    use_tenant(builder)
    tables = ", ".join(model._meta.db_table for model in FILLED)
    with connection.cursor() as cursor:  # autovacuum must not be what sets them
        for model in FILLED:
            cursor.execute(f"ALTER TABLE {model._meta.db_table} SET (autovacuum_enabled = false)")
    try:
        assert discover_now().status == DiscoveryRun.Status.SUCCEEDED
        shares = {model.__name__: all_visible_share(model) for model in FILLED}
    finally:
        with connection.cursor() as cursor:
            for model in FILLED:
                cursor.execute(f"ALTER TABLE {model._meta.db_table} RESET (autovacuum_enabled)")
    assert Device.objects.count() == 1100, tables
    # A page or two may be written after the VACUUM (the run's last updates); the rest must be marked.
    assert all(share > 0.9 for share in shares.values()), shares
    # Statistics for what the blade filters, searches and sorts on; none for the columns nothing reads that way.
    with connection.cursor() as cursor:
        cursor.execute("SELECT attname FROM pg_stats WHERE tablename = %s", [Device._meta.db_table])
        with_statistics = {name for (name,) in cursor.fetchall()}
    assert {"tab", "readiness_status", "failed_checks", "search_name", "device_name"} <= with_statistics
    assert not with_statistics & {"checks", "state_version", "ring_before_exclusion"}
