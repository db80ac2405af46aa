from django.db import migrations

# HIPAA 164.312(b)/(c): the audit trail is append-only. PostgreSQL itself refuses to change or
# remove a row, whatever code (or person with SQL access through the app's role) tries.
SQL = """
CREATE FUNCTION clinic_auditevent_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER clinic_auditevent_append_only
    BEFORE UPDATE OR DELETE ON clinic_auditevent
    FOR EACH ROW EXECUTE FUNCTION clinic_auditevent_refuse_change();
"""

REVERSE_SQL = """
DROP TRIGGER IF EXISTS clinic_auditevent_append_only ON clinic_auditevent;
DROP FUNCTION IF EXISTS clinic_auditevent_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [("clinic", "0001_initial")]

    operations = [migrations.RunSQL(SQL, REVERSE_SQL)]
