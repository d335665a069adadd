"""Runs record the process that claimed them, and the stale-run reaper runs every minute.

An install whose schedules were set up earlier has the reaper every 5 minutes; it is moved
to every minute here, so nobody has to re-run `setup_schedules` for it.
"""

from django.db import migrations, models

REAPER_SCHEDULE_NAME = "cohortsync:reap_stale_runs"
REAPER_INTERVAL_MINUTES = 1


def reaper_every_minute(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.using(schema_editor.connection.alias).filter(
        name=REAPER_SCHEDULE_NAME, minutes__gt=REAPER_INTERVAL_MINUTES
    ).update(minutes=REAPER_INTERVAL_MINUTES)


class Migration(migrations.Migration):

    dependencies = [
        ("syncs", "0006_run_retry_non_retriable"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.AddField(
            model_name="syncrun",
            name="worker",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text="The process that claimed the run (host, pid, start time): a run "
                "whose process is gone is reaped at once instead of after its heartbeat goes "
                "stale.",
            ),
        ),
        migrations.RunPython(reaper_every_minute, migrations.RunPython.noop),
    ]
