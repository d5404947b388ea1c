# ANALYZE of the device table skips the columns no query filters, joins or sorts on (PostgreSQL).

from django.db import migrations

# A copy of the list at the time of this migration (devices.models names them beside their fields).
WITHOUT_STATISTICS = ("checks", "state_version", "ring_before_exclusion", "ring_assigned_by_before_exclusion")


def set_statistics(target: int):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        columns = ", ".join(f"ALTER COLUMN {column} SET STATISTICS {target}" for column in WITHOUT_STATISTICS)
        schema_editor.execute(f"ALTER TABLE devices_device {columns}")

    return apply


class Migration(migrations.Migration):
    dependencies = [("devices", "0028_staged_candidates_in_one_index")]

    operations = [migrations.RunPython(set_statistics(0), set_statistics(-1))]
