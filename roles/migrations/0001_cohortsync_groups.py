"""The three staff groups (CohortSync viewers, operators, admins) with their permissions.

On a new database the permissions do not exist yet while migrating: the groups are filled
right after, by the post_migrate receiver in roles/apps.py, which also keeps them current.
"""

from django.db import migrations


def groups_create(apps, schema_editor):
    from roles.services import roles_sync

    roles_sync(apps=apps, using=schema_editor.connection.alias)


class Migration(migrations.Migration):

    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("cohorts", "0003_cohort_rules_help_more_than_days_ago"),
        ("destinations", "0003_connection_summary"),
        ("syncs", "0008_approve_run_permission"),
    ]

    operations = [migrations.RunPython(groups_create, migrations.RunPython.noop)]
