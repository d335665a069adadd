from typing import Any

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.db import DEFAULT_DB_ALIAS, router
from django.db.models.signals import post_migrate


def roles_after_migrate(sender: AppConfig, *, app_config: AppConfig, using: str = DEFAULT_DB_ALIAS,
                        apps: Any = global_apps, **kwargs: Any) -> None:
    """Django creates an app's permissions after migrating it (this receiver runs after that
    one): new permissions of CohortSync's apps join their groups right away. `flush` sends
    the signal too, so the groups also come back after it."""
    from roles.services import COHORTSYNC_APP_LABELS, roles_sync

    if app_config.label not in COHORTSYNC_APP_LABELS:
        return
    try:
        group_model = apps.get_model("auth", "Group")
        apps.get_model("auth", "Permission")
    except LookupError:  # auth is not migrated (yet, or any more)
        return
    if router.allow_migrate_model(using, group_model):
        roles_sync(apps=apps, using=using)


class RolesConfig(AppConfig):
    name = "roles"
    verbose_name = "Staff roles"

    def ready(self) -> None:
        post_migrate.connect(roles_after_migrate, dispatch_uid="roles.roles_after_migrate")
