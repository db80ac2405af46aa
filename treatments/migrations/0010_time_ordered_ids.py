# Rows that accumulate with the clinics' work get time-ordered ids (UUIDv7, clinic/ids.py): new keys
# land at the primary key's newest edge. Rows made before keep theirs. No change to the table.

import clinic.ids
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('treatments', '0009_record_clinic_lot_statistics'),
    ]

    operations = [
        migrations.AlterField(
            model_name='aftercareplan',
            name='id',
            field=models.UUIDField(default=clinic.ids.time_ordered_uuid, editable=False, primary_key=True, serialize=False),
        ),
        migrations.AlterField(
            model_name='consent',
            name='id',
            field=models.UUIDField(default=clinic.ids.time_ordered_uuid, editable=False, primary_key=True, serialize=False),
        ),
        migrations.AlterField(
            model_name='recallnotice',
            name='id',
            field=models.UUIDField(default=clinic.ids.time_ordered_uuid, editable=False, primary_key=True, serialize=False),
        ),
        migrations.AlterField(
            model_name='treatmentamendment',
            name='id',
            field=models.UUIDField(default=clinic.ids.time_ordered_uuid, editable=False, primary_key=True, serialize=False),
        ),
        migrations.AlterField(
            model_name='treatmentrecord',
            name='id',
            field=models.UUIDField(default=clinic.ids.time_ordered_uuid, editable=False, primary_key=True, serialize=False),
        ),
    ]
