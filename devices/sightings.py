"""When discovery last found each device in the registration group (DeviceSighting), written by the runs.

Every device has its sighting row: a trigger adds it when the device is inserted, whoever inserts it, so a list
sorted by "Last discovered" joins the sightings without losing a device.

A device that the run which last recorded sightings found in the group holds SEEN_BY_LAST_RUN, which reads as that
run's time (DiscoveryRun.sightings_at, through last_discovered()). An hourly run then writes only the devices that
came into the group or left it: writing its time on each of 100,000 devices rewrote every row at every run (a third
of an unchanged run's database time, bench/README.md). The stand-in sorts after every real time, as the last run's
time does, and before the devices never discovered: the blade's sort by "Last discovered" keeps its index.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.db import connection, connections, models, transaction
from django.db.models import Case, F, Subquery, When

if TYPE_CHECKING:
    from .models import DiscoveryRun

SEEN_BY_LAST_RUN = datetime(9999, 12, 31, tzinfo=UTC)


def recording_times() -> models.QuerySet:
    """The times runs recorded sightings (DiscoveryRun.sightings_at), the last first."""
    from .models import DiscoveryRun

    return (
        DiscoveryRun.objects.filter(sightings_at__isnull=False)
        .order_by("-sightings_at")
        .values_list("sightings_at", flat=True)
    )


def last_discovered(path: str = "sighting__last_discovered_at") -> models.Expression:
    """The device's "Last discovered" time as the database reads it: the stored time, or the time of the run that
    last recorded sightings for a device that run found. One statement reads both (no run's commit in between)."""
    return Case(
        When(**{path: SEEN_BY_LAST_RUN}, then=Subquery(recording_times()[:1])),
        default=F(path),
        output_field=models.DateTimeField(),
    )


def changes(run: DiscoveryRun) -> tuple[models.QuerySet, models.QuerySet]:
    """The sightings `record` changes: of the devices the run found (its candidates) that do not hold
    SEEN_BY_LAST_RUN yet, and of those holding it that the run did not find."""
    from .models import Device, DeviceSighting, ObjectKind, StagedObject

    candidates = StagedObject.objects.filter(run=run, kind=ObjectKind.CANDIDATE).values("device_id")
    found = Device.objects.filter(azure_ad_device_id__in=candidates).values("pk")
    return (
        DeviceSighting.objects.filter(device__in=found).exclude(last_discovered_at=SEEN_BY_LAST_RUN),
        DeviceSighting.objects.filter(last_discovered_at=SEEN_BY_LAST_RUN).exclude(device__in=found),
    )


@contextmanager
def without_nested_loops() -> Iterator[None]:
    """A transaction whose statements join the run's candidates by hashing (PostgreSQL): here, and for the serial
    numbers candidates share (devices.discovery.evaluation.duplicate_serials). The planner reads how many
    sightings `changes` selects from the table's statistics, which autovacuum took when nearly every row held
    SEEN_BY_LAST_RUN: it expects one row, and joins each against a scan of the 100,000 candidates. With 96,942 devices
    new (a tenant imported again into emptied tables) that plan had not ended after 7 minutes; hashed, 0.7 s."""
    postgresql = connection.vendor == "postgresql"
    with transaction.atomic(), connection.cursor() as cursor:
        if postgresql:  # set for this transaction; put back after (a caller's transaction may go on)
            cursor.execute("SELECT current_setting('enable_nestloop')")
            before = cursor.fetchone()[0]
            cursor.execute("SET LOCAL enable_nestloop = off")
        yield
        if postgresql:
            cursor.execute("SELECT set_config('enable_nestloop', %s, true)", [before])


def record(run: DiscoveryRun, now: datetime) -> None:
    """The run found its candidates (staged) in the group at `now`: the devices it found that the last recording
    did not are marked SEEN_BY_LAST_RUN, those it did not find keep the last recording's time, and the run's own
    time becomes the one SEEN_BY_LAST_RUN stands for. One transaction: a reader sees the last recording or this one."""
    from .models import DiscoveryRun

    newly_found, not_found = changes(run)
    with without_nested_loops():
        # Without an earlier recording, a device that holds the stand-in was found as it was inserted (`inserted_found`)
        # by a run that did not get here: found by no recording, it has no time.
        last = recording_times().exclude(pk=run.pk).first()
        not_found.update(last_discovered_at=last)
        newly_found.update(last_discovered_at=SEEN_BY_LAST_RUN)
        DiscoveryRun.objects.filter(pk=run.pk).update(sightings_at=now)


@contextmanager
def inserted_found(found: bool) -> Iterator[None]:
    """The devices inserted within are found by a run that records the first sightings (PostgreSQL, when `found`):
    the trigger adds their sighting holding SEEN_BY_LAST_RUN, which reads as no time until `record` ends that run
    (there is no earlier recording to read). A first import at 100,000 devices inserted them with none and `record`
    then rewrote 97,000 sightings, 2.5 s of the database beside the device table's index builds.

    Set for the inserts only and put back after: in a caller's transaction that goes on (a savepoint's SET LOCAL
    outlives the savepoint), a device inserted later, by an API registration, was not found by any run."""
    if not (found and connection.vendor == "postgresql"):
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config(%s, 'on', true)", [FIRST_FOUND])
        yield  # on an error the savepoint's rollback undoes the setting
        cursor.execute("SELECT set_config(%s, '', true)", [FIRST_FOUND])


FIRST_FOUND = "autopatch.first_found"  # a setting of the transaction, read by the trigger

# One statement per insert on PostgreSQL (a discovery inserts 100,000 devices in one), one per row on SQLite, which
# has no statement triggers.
TRIGGER = {
    "postgresql": [
        f"""CREATE OR REPLACE FUNCTION devices_device_sighting() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             INSERT INTO devices_devicesighting (device_id, last_discovered_at)
             SELECT id, CASE WHEN current_setting('{FIRST_FOUND}', true) = 'on'
                             THEN '{SEEN_BY_LAST_RUN.isoformat()}'::timestamptz END
               FROM inserted_devices ON CONFLICT (device_id) DO NOTHING;
             RETURN NULL;
           END $$""",
        """CREATE OR REPLACE TRIGGER devices_device_sighting AFTER INSERT ON devices_device
           REFERENCING NEW TABLE AS inserted_devices FOR EACH STATEMENT
           EXECUTE FUNCTION devices_device_sighting()""",
    ],
    "sqlite": [
        """CREATE TRIGGER IF NOT EXISTS devices_device_sighting AFTER INSERT ON devices_device FOR EACH ROW BEGIN
             INSERT OR IGNORE INTO devices_devicesighting (device_id, last_discovered_at) VALUES (NEW.id, NULL);
           END""",
    ],
}
DROP = {
    "postgresql": [
        "DROP TRIGGER IF EXISTS devices_device_sighting ON devices_device",
        "DROP FUNCTION IF EXISTS devices_device_sighting()",
    ],
    "sqlite": ["DROP TRIGGER IF EXISTS devices_device_sighting"],
}
# Sightings of devices inserted while there was no trigger.
BACKFILL = """
    INSERT INTO devices_devicesighting (device_id, last_discovered_at)
    SELECT id, NULL FROM devices_device d
     WHERE NOT EXISTS (SELECT 1 FROM devices_devicesighting s WHERE s.device_id = d.id)
"""


def install_trigger(using: str = "default") -> None:
    with connections[using].cursor() as cursor:
        for sql in TRIGGER[connections[using].vendor]:
            cursor.execute(sql)
        cursor.execute(BACKFILL)


def drop_trigger(using: str = "default") -> None:
    with connections[using].cursor() as cursor:
        for sql in DROP[connections[using].vendor]:
            cursor.execute(sql)


def reinstall_after_migrate(sender: Any, using: str = "default", plan: Any = None, **kwargs: Any) -> None:
    """After every migrate: SQLite drops a table's triggers whenever a migration rebuilds the table (which it does
    to add most columns), so the trigger is put back, and any sighting missed meanwhile filled in."""
    if plan is None or any(migration.app_label == "devices" for migration, _ in plan):
        install_trigger(using)
