"""Indexes for searching serial numbers and Azure AD device IDs by their start on PostgreSQL: istartswith
writes UPPER(col::text) LIKE 'X%', which only a text_pattern_ops index serves under a non-C collation."""

from django.db import migrations

INDEXES = (
    ("device_serial_upper_prefix", "UPPER(serial_number::text) text_pattern_ops"),
    ("device_aad_id_upper_prefix", "UPPER(azure_ad_device_id::text) text_pattern_ops"),
)


def on_postgresql(schema_editor, statements: list[str]) -> None:
    """Other databases need no such indexes at their size."""
    if schema_editor.connection.vendor == "postgresql":
        for sql in statements:
            schema_editor.execute(sql)


def create(apps, schema_editor):
    on_postgresql(schema_editor, [f"CREATE INDEX IF NOT EXISTS {name} ON devices_device ({expression})"
                                  for name, expression in INDEXES])


def drop(apps, schema_editor):
    on_postgresql(schema_editor, [f"DROP INDEX IF EXISTS {name}" for name, _ in INDEXES])


class Migration(migrations.Migration):
    dependencies = [("devices", "0007_state_version_covered_runs")]
    operations = [migrations.RunPython(create, drop)]
