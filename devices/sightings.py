"""Every device has its sighting row (DeviceSighting): a trigger adds it when the device is inserted, whoever
inserts it, so a list sorted by "Last discovered" joins the sightings without losing a device."""

from __future__ import annotations

from typing import Any

from django.db import connections

# One statement per insert on PostgreSQL (a discovery inserts 100,000 devices in one), one per row on SQLite, which
# has no statement triggers.
TRIGGER = {
    "postgresql": [
        """CREATE OR REPLACE FUNCTION devices_device_sighting() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             INSERT INTO devices_devicesighting (device_id, last_discovered_at)
             SELECT id, NULL FROM inserted_devices ON CONFLICT (device_id) DO NOTHING;
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
