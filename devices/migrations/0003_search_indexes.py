"""Indexes for the blade's search on PostgreSQL: trigram GIN for name and user parts, and the
case-folded IDs and serial numbers. They match the expressions Django writes for icontains and
iexact (UPPER(col::text)). Other databases have no such indexes and need none at their size."""

from django.db import migrations

INDEXES = (
    ("device_name_trgm", "GIN (UPPER(device_name::text) gin_trgm_ops)"),
    ("device_user_trgm", "GIN (UPPER(primary_user::text) gin_trgm_ops)"),
    ("device_serial_upper", "(UPPER(serial_number::text))"),
    ("device_aad_id_upper", "(UPPER(azure_ad_device_id::text))"),
)


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, expression in INDEXES:
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON devices_device USING {expression}"
                              if expression.startswith("GIN") else
                              f"CREATE INDEX IF NOT EXISTS {name} ON devices_device {expression}")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _ in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("devices", "0002_blade")]
    operations = [migrations.RunPython(create, drop)]
