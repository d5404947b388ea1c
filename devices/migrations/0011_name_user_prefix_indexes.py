"""Indexes for a search of one or two characters on PostgreSQL, which matches the start of device names and users:
istartswith writes UPPER(col::text) LIKE 'X%', which only a text_pattern_ops index serves under a non-C collation
(as 0008 does for serial numbers and device IDs)."""

from django.db import migrations

INDEXES = (
    ("device_name_upper_prefix", "UPPER(device_name::text) text_pattern_ops"),
    ("device_user_upper_prefix", "UPPER(primary_user::text) text_pattern_ops"),
)


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":  # other databases need none at their size
        for name, expression in INDEXES:
            schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON devices_device ({expression})")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name, _ in INDEXES:
            schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("devices", "0010_tab_sort_indexes")]
    operations = [migrations.RunPython(create, drop)]
