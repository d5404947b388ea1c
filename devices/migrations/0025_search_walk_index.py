# A search without filters walks the default order through an index that carries only what the search reads.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('devices', '0024_group_page_replacement_indexes'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='device',
            index=models.Index(fields=['tab', 'device_name', 'id'], include=('search_name', 'search_user', 'search_serial', 'search_id'), name='device_tab_name_search'),
        ),
    ]
