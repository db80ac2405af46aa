# Rows that accumulate with the clinics' work get time-ordered ids (UUIDv7, clinic/ids.py): new keys
# land at the primary key's newest edge. Rows made before keep theirs. No change to the table.

import clinic.ids
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('patients', '0005_clinic_search_index'),
    ]

    operations = [
        migrations.AlterField(
            model_name='screening',
            name='id',
            field=models.UUIDField(default=clinic.ids.time_ordered_uuid, editable=False, primary_key=True, serialize=False),
        ),
    ]
