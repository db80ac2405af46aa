# A screening's result lists every contraindication that holds on its day, the isotretinoin
# washout included while it runs (v1.1 "Point of care"). Screenings recorded before are given
# the same answer; the washout is the last of the reason order, so it is appended.
from django.db import migrations

SQL = """
UPDATE patients_screening
SET contraindications = array_append(contraindications, 'isotretinoin_washout')
WHERE washout_ends_on IS NOT NULL
  AND washout_ends_on > screened_on
  AND NOT ('isotretinoin_washout' = ANY (contraindications))
"""


class Migration(migrations.Migration):
    dependencies = [("patients", "0002_search_text")]

    operations = [migrations.RunSQL(SQL, migrations.RunSQL.noop)]
