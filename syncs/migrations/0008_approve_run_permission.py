"""Approving a run held by the mass-removal guard gets its own permission, `approve_run`.

`manage_run` used to cancel, retry and approve. So that nobody loses what they could do,
every user and group holding `manage_run` now also gets `approve_run`; from here on the
two are granted separately (operators cancel and retry, admins also approve).
"""

from django.conf import settings
from django.db import migrations

APPROVE_NAME = "Can approve runs held by the mass-removal guard"
MANAGE_NAME = "Can cancel, retry and reject runs"


def grant_approve_run_to_run_managers(apps, schema_editor):
    db = schema_editor.connection.alias
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    User = apps.get_model(settings.AUTH_USER_MODEL)
    run_type = ContentType.objects.using(db).filter(app_label="syncs", model="syncrun").first()
    manage = (
        Permission.objects.using(db).filter(content_type=run_type, codename="manage_run").first()
        if run_type is not None
        else None
    )
    if manage is None:
        # A new database: permissions are created after migrating, and nobody holds any yet.
        return
    manage.name = MANAGE_NAME
    manage.save(update_fields=["name"])
    approve, _ = Permission.objects.using(db).get_or_create(
        content_type=run_type, codename="approve_run", defaults={"name": APPROVE_NAME}
    )
    for grants, holder in ((Group.permissions.through, "group_id"), (User.user_permissions.through, "user_id")):
        holders = grants.objects.using(db).filter(permission_id=manage.pk).values_list(holder, flat=True)
        grants.objects.using(db).bulk_create(
            [grants(**{holder: pk, "permission_id": approve.pk}) for pk in holders],
            ignore_conflicts=True,
        )


class Migration(migrations.Migration):

    dependencies = [
        ("syncs", "0007_syncrun_worker_reaper_every_minute"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="syncrun",
            options={
                "get_latest_by": "created_at",
                "ordering": ["-created_at", "-id"],
                "permissions": [("manage_run", MANAGE_NAME), ("approve_run", APPROVE_NAME)],
            },
        ),
        migrations.RunPython(grant_approve_run_to_run_managers, migrations.RunPython.noop),
    ]
