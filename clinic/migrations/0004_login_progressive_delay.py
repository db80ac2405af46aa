from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("clinic", "0003_audit_chain"),
    ]

    operations = [
        migrations.RenameField(
            model_name="loginfailurecounter",
            old_name="window_started_at",
            new_name="last_failure_at",
        ),
        migrations.AddField(
            model_name="loginfailurecounter",
            name="next_attempt_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="loginfailurecounter",
            name="last_refused",
            field=models.BooleanField(default=False),
        ),
    ]
