"""The search's columns, kept upper-cased by the database (Device.search_*), and the search indexes moved onto them
from the UPPER(...) expressions of 0003, 0008 and 0011 (PostgreSQL; other databases need none at their size)."""

import django.db.models.functions.text
from django.db import migrations, models

# (name, the index on the stored column, the expression index it replaces)
INDEXES = (
    (
        "device_name_trgm",
        "USING GIN (search_name gin_trgm_ops)",
        "USING GIN (UPPER(device_name::text) gin_trgm_ops)",
    ),
    (
        "device_user_trgm",
        "USING GIN (search_user gin_trgm_ops)",
        "USING GIN (UPPER(primary_user::text) gin_trgm_ops)",
    ),
    (
        "device_name_upper_prefix",
        "(search_name text_pattern_ops)",
        "(UPPER(device_name::text) text_pattern_ops)",
    ),
    (
        "device_user_upper_prefix",
        "(search_user text_pattern_ops)",
        "(UPPER(primary_user::text) text_pattern_ops)",
    ),
    (
        "device_serial_upper_prefix",
        "(search_serial text_pattern_ops)",
        "(UPPER(serial_number::text) text_pattern_ops)",
    ),
    (
        "device_aad_id_upper_prefix",
        "(search_id text_pattern_ops)",
        "(UPPER(azure_ad_device_id::text) text_pattern_ops)",
    ),
)


def rebuild(schema_editor, new: bool) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, on_column, on_expression in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")
        schema_editor.execute(f"CREATE INDEX {name} ON devices_device {on_column if new else on_expression}")


def forward(apps, schema_editor):
    rebuild(schema_editor, new=True)
    if schema_editor.connection.vendor == "postgresql":
        # Statistics for the new columns now, not when autovacuum comes by: without them a rare search was planned
        # as a walk of the whole name index (55 ms at 100,000 devices for one match, 6 ms with them).
        schema_editor.execute("ANALYZE devices_device")


def backward(apps, schema_editor):
    rebuild(schema_editor, new=False)


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0018_fewer_device_indexes"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="device",
            name="device_tab_device_name",
        ),
        migrations.AddField(
            model_name="device",
            name="search_id",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.db.models.functions.text.Upper("azure_ad_device_id"),
                output_field=models.CharField(max_length=64),
            ),
        ),
        migrations.AddField(
            model_name="device",
            name="search_name",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.db.models.functions.text.Upper("device_name"),
                output_field=models.CharField(max_length=256),
            ),
        ),
        migrations.AddField(
            model_name="device",
            name="search_serial",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.db.models.functions.text.Upper("serial_number"),
                output_field=models.CharField(max_length=128),
            ),
        ),
        migrations.AddField(
            model_name="device",
            name="search_user",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.db.models.functions.text.Upper("primary_user"),
                output_field=models.CharField(max_length=256),
            ),
        ),
        migrations.AddIndex(
            model_name="device",
            index=models.Index(
                fields=["tab", "device_name", "id"],
                include=(
                    "search_name",
                    "search_user",
                    "search_serial",
                    "search_id",
                    "readiness_status",
                    "ring",
                    "failed_checks",
                    "join_type",
                    "management",
                    "report_generated_at",
                ),
                name="device_tab_device_name",
            ),
        ),
        migrations.RunPython(forward, backward),
    ]
