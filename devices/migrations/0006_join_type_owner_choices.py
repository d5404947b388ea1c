from django.db import migrations, models

# Join type and owner were stored as their labels; they become choice values, like ring and management.
JOIN_TYPES = {"Azure AD joined": "azure_ad_joined", "Hybrid Azure AD joined": "hybrid_azure_ad_joined",
              "Azure AD registered": "azure_ad_registered"}
OWNERS = {"Corporate": "corporate", "Personal": "personal"}


def to_values(apps, schema_editor):
    Device = apps.get_model("devices", "Device")
    for label, value in JOIN_TYPES.items():
        Device.objects.filter(join_type=label).update(join_type=value)
    for label, value in OWNERS.items():
        Device.objects.filter(owner=label).update(owner=value)


def to_labels(apps, schema_editor):
    Device = apps.get_model("devices", "Device")
    for label, value in JOIN_TYPES.items():
        Device.objects.filter(join_type=value).update(join_type=label)
    for label, value in OWNERS.items():
        Device.objects.filter(owner=value).update(owner=label)


class Migration(migrations.Migration):
    dependencies = [("devices", "0005_status_management_index")]

    operations = [
        migrations.AlterField(
            model_name="device",
            name="join_type",
            field=models.CharField(
                blank=True,
                choices=[("azure_ad_joined", "Azure AD joined"), ("hybrid_azure_ad_joined", "Hybrid Azure AD joined"),
                         ("azure_ad_registered", "Azure AD registered")],
                max_length=32,
            ),
        ),
        migrations.AlterField(
            model_name="device",
            name="owner",
            field=models.CharField(blank=True, choices=[("corporate", "Corporate"), ("personal", "Personal")], max_length=32),
        ),
        migrations.RunPython(to_values, to_labels),
    ]
