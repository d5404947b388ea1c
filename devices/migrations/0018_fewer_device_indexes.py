"""Fewer indexes on the device table: each one is written with every device a discovery or a readiness report
changes (37 of them made a plain UPDATE of 1,000 devices' status about 165 ms; bench/README.md).

Gone, as nothing reads them any more:
- readiness_status's own index and its pattern twin: (readiness_status, ring) and every (tab, column, id) index
  serve it;
- UPPER(serial_number) and UPPER(azure_ad_device_id) (0003, for the search's iexact of round 1): the search now
  matches their start, through the text_pattern_ops indexes of 0011, which serve equality too;
- azure_ad_device_id's varchar_pattern_ops twin, which Django adds to a unique text column for LIKE on it: no
  query matches part of that column as it is written (the search folds its case first)."""

from django.db import migrations, models

UNUSED = (
    ("device_serial_upper", "(UPPER(serial_number::text))"),
    ("device_aad_id_upper", "(UPPER(azure_ad_device_id::text))"),
    ("devices_device_azure_ad_device_id_3ae16e13_like", "(azure_ad_device_id varchar_pattern_ops)"),
)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, _ in UNUSED:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, expression in UNUSED:
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON devices_device {expression}")


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0017_search_covering_name_index"),
    ]

    operations = [
        migrations.AlterField(
            model_name="device",
            name="readiness_status",
            field=models.CharField(
                choices=[
                    ("active", "Active"),
                    ("readiness_failed", "Readiness failed"),
                    ("inactive", "Inactive"),
                    ("prerequisites_failed", "Pre-requisites failed"),
                    ("excluded", "Excluded"),
                ],
                max_length=32,
            ),
        ),
        migrations.RunPython(drop, create),
    ]
