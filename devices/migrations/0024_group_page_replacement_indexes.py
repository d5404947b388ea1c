# The registration group page's possible replacements, read through indexes (devices.lifecycle).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('devices', '0023_group_page_indexes'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='device',
            index=models.Index(condition=models.Q(('excluded', False), ('registered_at__isnull', False)), fields=['-last_intune_checkin'], name='device_registered_checkin'),
        ),
        migrations.AddIndex(
            model_name='tenantobject',
            index=models.Index(condition=models.Q(('kind', 'managed')), fields=['serial_number'], name='tenant_managed_serial'),
        ),
    ]
