"""Every device has its sighting row, added by the database whoever inserts the device (discovery, a registration
through the API, a test), with no time until discovery finds it: a list sorted by "Last discovered" then joins the
sightings without losing a device, and reads them in the order of their index (devices.models.DeviceSighting, devices.sightings: SQLite drops the trigger whenever a later migration
rebuilds the table, and every migrate puts it back)."""

from django.db import migrations, models

from devices.sightings import drop_trigger, install_trigger

def create(apps, schema_editor):
    install_trigger(schema_editor.connection.alias)


def drop(apps, schema_editor):
    drop_trigger(schema_editor.connection.alias)
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
