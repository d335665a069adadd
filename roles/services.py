"""CohortSync's staff roles: three groups whose permissions follow rules, not lists.

* CohortSync viewers: every view permission of CohortSync's apps, nothing else (no
  actions; secrets are shown to nobody).
* CohortSync operators: the viewers' permissions plus the run controls: export now, dry
  run, full resync (`syncs.run_sync`), retry, cancel and reject a guarded run
  (`syncs.manage_run`; rejecting sends nothing), run a profile import (`sources.run_import`).
* CohortSync admins: every permission of CohortSync's apps: configure destinations,
  cohorts, profiles, syncs and their schedules, approve mass removals.

The rules work per app label, so a model added to one of CohortSync's apps later (or an app
listed here before it lands) joins the groups on the next `migrate`. Permissions of other
apps (users and groups, the task queue, whose schedules name any Python function to call)
are never granted by a role: they stay with superusers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.apps import apps as global_apps
from django.apps.registry import Apps
from django.db import DEFAULT_DB_ALIAS

logger = logging.getLogger(__name__)

VIEWERS = "CohortSync viewers"
OPERATORS = "CohortSync operators"
ADMINS = "CohortSync admins"

# The apps whose permissions the roles hand out, whatever models they hold now or later.
COHORTSYNC_APP_LABELS = frozenset({"cohorts", "destinations", "syncs", "alerts", "sources", "api"})
# Installed apps whose permissions no role grants (tests check every app is in one list).
SUPERUSER_ONLY_APP_LABELS = frozenset(
    {"admin", "auth", "contenttypes", "sessions", "messages", "staticfiles", "django_q", "roles",
     "health"}
)
# The control permissions of operators ("app_label.codename"). An app that adds an action
# for operators adds its permission here; everything else beyond viewing is for admins.
OPERATOR_PERMISSIONS = frozenset({"syncs.run_sync", "syncs.manage_run", "sources.run_import"})


def _views(app_label: str, codename: str) -> bool:
    return codename.startswith("view_")


def _operates(app_label: str, codename: str) -> bool:
    return _views(app_label, codename) or f"{app_label}.{codename}" in OPERATOR_PERMISSIONS


def _administers(app_label: str, codename: str) -> bool:
    return True


@dataclass(frozen=True)
class Role:
    group: str
    grants: Callable[[str, str], bool]


ROLES = (Role(VIEWERS, _views), Role(OPERATORS, _operates), Role(ADMINS, _administers))


def role_grants(role: Role, *, app_label: str, codename: str) -> bool:
    """Whether `role` holds the permission `app_label.codename`."""
    return app_label in COHORTSYNC_APP_LABELS and role.grants(app_label, codename)


@dataclass(frozen=True)
class RoleChange:
    group: str
    added: int
    removed: int


def roles_sync(*, apps: Apps = global_apps, using: str = DEFAULT_DB_ALIAS) -> list[RoleChange]:
    """Create the three groups if missing and give each exactly the permissions of
    CohortSync's apps that its rule grants; permissions of other apps a group was given by
    hand are left alone. Safe to repeat. `apps` may be a migration's historical registry."""
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    grants = group_model.permissions.through
    cohortsync_permissions = list(
        permission_model.objects.using(using)
        .filter(content_type__app_label__in=COHORTSYNC_APP_LABELS)
        .values_list("pk", "content_type__app_label", "codename")
    )
    changes = []
    for role in ROLES:
        group, _ = group_model.objects.using(using).get_or_create(name=role.group)
        wanted = {
            pk
            for pk, app_label, codename in cohortsync_permissions
            if role_grants(role, app_label=app_label, codename=codename)
        }
        held = set(
            grants.objects.using(using)
            .filter(group_id=group.pk, permission__content_type__app_label__in=COHORTSYNC_APP_LABELS)
            .values_list("permission_id", flat=True)
        )
        missing, extra = wanted - held, held - wanted
        grants.objects.using(using).bulk_create(
            [grants(group_id=group.pk, permission_id=pk) for pk in sorted(missing)],
            ignore_conflicts=True,
        )
        grants.objects.using(using).filter(group_id=group.pk, permission_id__in=extra).delete()
        changes.append(RoleChange(group=role.group, added=len(missing), removed=len(extra)))
        if missing or extra:
            logger.debug("%s: %s permission(s) granted, %s withdrawn", role.group, len(missing), len(extra))
    return changes
