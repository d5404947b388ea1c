"""Every device has its sighting row, added by the database whoever inserts the device (discovery, a registration
through the API, a test), with no time until discovery finds it: a list sorted by "Last discovered" then joins the
sightings without losing a device, and reads them in the order of their index (devices.models.DeviceSighting)."""

from django.db import migrations, models

BACKFILL = """
    INSERT INTO devices_devicesighting (device_id, last_discovered_at)
    SELECT id, NULL FROM devices_device d
     WHERE NOT EXISTS (SELECT 1 FROM devices_devicesighting s WHERE s.device_id = d.id)
"""

# One statement per insert on PostgreSQL (a discovery inserts 100,000 devices in one), one per row on SQLite,
# which has no statement triggers.
TRIGGER = {
    "postgresql": [
        """CREATE FUNCTION devices_device_sighting() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             INSERT INTO devices_devicesighting (device_id, last_discovered_at)
             SELECT id, NULL FROM inserted_devices ON CONFLICT (device_id) DO NOTHING;
             RETURN NULL;
           END $$""",
        """CREATE TRIGGER devices_device_sighting AFTER INSERT ON devices_device
           REFERENCING NEW TABLE AS inserted_devices FOR EACH STATEMENT
           EXECUTE FUNCTION devices_device_sighting()""",
    ],
    "sqlite": [
        """CREATE TRIGGER devices_device_sighting AFTER INSERT ON devices_device FOR EACH ROW BEGIN
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


def create(apps, schema_editor):
    for sql in [BACKFILL, *TRIGGER[schema_editor.connection.vendor]]:
        schema_editor.execute(sql)


def drop(apps, schema_editor):
    for sql in DROP[schema_editor.connection.vendor]:
        schema_editor.execute(sql)
    schema_editor.execute("DELETE FROM devices_devicesighting WHERE last_discovered_at IS NULL")


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0011_name_user_prefix_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="devicesighting",
            name="last_discovered_at",
            field=models.DateTimeField(null=True, verbose_name="Last discovered"),
        ),
        migrations.AddIndex(
            model_name="devicesighting",
            index=models.Index(fields=["last_discovered_at", "device"], name="sighting_time_device"),
        ),
        migrations.RunPython(create, drop),
    ]
