# The time the run that last recorded sightings stands for (devices.sightings.SEEN_BY_LAST_RUN).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('devices', '0025_search_walk_index'),
    ]

    operations = [
        migrations.AddField(
            model_name='discoveryrun',
            name='sightings_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name='discoveryrun',
            index=models.Index(fields=['-sightings_at'], name='run_sightings_at'),
        ),
    ]
