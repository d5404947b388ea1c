"""Recording sightings when the statistics are stale (PostgreSQL): autovacuum last sampled the sightings when every
device held the last run's stand-in, and then many devices are new. The planner expects to change one row and
joins it against a scan of the candidates, once per row it actually meets: at 96,942 new devices that statement had
not ended after 7 minutes. The run's statements join by hashing instead, whatever the planner expects."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from devices import sightings
from devices.models import Device, DeviceSighting, DiscoveryRun, ObjectKind, StagedObject

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner"),
    pytest.mark.django_db,
]

SEEN_SETTINGS = """
CREATE TABLE nestloop_seen (setting text);
CREATE FUNCTION note_nestloop() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO nestloop_seen VALUES (current_setting('enable_nestloop'));
    RETURN NULL;
END $$;
CREATE TRIGGER note_nestloop AFTER UPDATE ON devices_devicesighting
    FOR EACH STATEMENT EXECUTE FUNCTION note_nestloop();
"""


def plan(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def test_a_run_that_finds_many_new_devices_records_them_by_hashing_whatever_the_statistics_say():
    devices = Device.objects.bulk_create(
        Device(azure_ad_device_id=f"00000000-0000-4000-8000-{i:012d}", device_name=f"LT-{i:04d}")
        for i in range(400)
    )
    # The statistics of an hour when every device was found by the last run...
    DeviceSighting.objects.update(last_discovered_at=sightings.SEEN_BY_LAST_RUN)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE devices_devicesighting")
    # ...and now 300 of them are new (their sightings are blank) and this run finds all 400.
    DeviceSighting.objects.filter(device__in=devices[:300]).update(last_discovered_at=None)
    run = DiscoveryRun.objects.create(trigger=DiscoveryRun.Trigger.MANUAL, started_at=timezone.now())
    StagedObject.objects.bulk_create(
        StagedObject(
            run=run, kind=ObjectKind.CANDIDATE, object_id=d.azure_ad_device_id, device_id=d.azure_ad_device_id
        )
        for d in devices
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE devices_stagedobject, devices_device")
        cursor.execute(SEEN_SETTINGS)

    with CaptureQueriesContext(connection) as queries:
        sightings.record(run, run.started_at)

    assert set(DeviceSighting.objects.values_list("last_discovered_at", flat=True)) == {
        sightings.SEEN_BY_LAST_RUN
    }
    with connection.cursor() as cursor:
        cursor.execute("SELECT setting FROM nestloop_seen")
        # the UPDATEs of the sightings: of those found (all of them), and of those not found (none)
        assert [setting for (setting,) in cursor.fetchall()] == ["off", "off"]
        # ...and the setting is put back for what the caller's transaction (this test's) does next.
        cursor.execute("SELECT current_setting('enable_nestloop')")
        assert cursor.fetchone()[0] == "on"
    # Under that setting the statement hashes the candidates. (The plan as the statistics stand loops only at
    # sizes beyond a test's: in bench/pages.py's reimport of 96,942 devices, 401,030 staged rows.)
    (update,) = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].startswith('UPDATE "devices_devicesighting"')
        and "= '9999-12-31" in q["sql"].split("WHERE")[0]
    ]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_nestloop = off")
    assert "Nested Loop" not in plan(update) and "Hash" in plan(update)
