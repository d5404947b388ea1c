"""The devices' delta link was made with a $select that lacks the properties dynamic membership rules read: Graph
keeps the query inside its links, so the next discovery run reads the devices in full with the new $select."""

from django.db import migrations


def forget_device_delta_link(apps, schema_editor):
    apps.get_model("devices", "DeltaLink").objects.filter(name="devices").delete()


class Migration(migrations.Migration):
    dependencies = [("devices", "0013_group")]

    operations = [migrations.RunPython(forget_device_delta_link, migrations.RunPython.noop)]
