from django.db import migrations

# A lot belongs to one clinic, so "clinic = X AND tip_lot = Y" (a lot's usage, its count) is as
# selective as the lot alone; without these statistics PostgreSQL multiplies the two
# selectivities and plans the lot's thousand records as a handful.
SQL = """
CREATE STATISTICS treatments_treatmentrecord_clinic_lot (dependencies, ndistinct)
    ON clinic_id, tip_lot_id FROM treatments_treatmentrecord;
ANALYZE treatments_treatmentrecord;
"""
REVERSE_SQL = "DROP STATISTICS IF EXISTS treatments_treatmentrecord_clinic_lot;"


class Migration(migrations.Migration):
    dependencies = [
        ("treatments", "0008_acknowledged_warnings_db_default"),
    ]

    operations = [migrations.RunSQL(SQL, REVERSE_SQL)]
