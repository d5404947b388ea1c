# Candidates are staged under their constraint's index only: the run, kind and object ID index leaves them out.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('devices', '0027_sightings_found_on_insert'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='stagedobject',
            name='devices_sta_run_id_64a877_idx',
        ),
        migrations.AddIndex(
            model_name='stagedobject',
            index=models.Index(condition=models.Q(('kind', 'candidate'), _negated=True), fields=['run', 'kind', 'object_id'], name='staged_by_object'),
        ),
    ]
