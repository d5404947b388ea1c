"""The sighting trigger reads whether the inserting transaction records the first sightings (devices.sightings.
inserted_found): a first import then inserts its devices found, rather than rewriting every sighting after."""

from django.db import migrations

from devices.sightings import install_trigger


def reinstall(apps, schema_editor):
    install_trigger(schema_editor.connection.alias)


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0026_discovery_sightings_at"),
    ]

    operations = [
        migrations.RunPython(reinstall, reinstall),
    ]
