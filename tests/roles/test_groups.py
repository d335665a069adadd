"""The three staff groups: created by migrating, filled by rules per app, kept current."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management.sql import emit_post_migrate_signal

from roles.services import (
    ADMINS,
    COHORTSYNC_APP_LABELS,
    OPERATORS,
    SUPERUSER_ONLY_APP_LABELS,
    VIEWERS,
    roles_sync,
)

pytestmark = pytest.mark.django_db

# Today's view permissions; apps that land later (alerts, sources) add theirs.
KNOWN_VIEWS = {
    "cohorts.view_cohort",
    "cohorts.view_profile",
    "cohorts.view_staticmembership",
    "destinations.view_destination",
    "syncs.view_sync",
    "syncs.view_syncedmember",
    "syncs.view_syncfailure",
    "syncs.view_syncrun",
}


def cohortsync_permissions() -> set[str]:
    return {
        f"{app}.{codename}"
        for app, codename in Permission.objects.filter(
            content_type__app_label__in=COHORTSYNC_APP_LABELS
        ).values_list("content_type__app_label", "codename")
    }


def all_views() -> set[str]:
    return {p for p in cohortsync_permissions() if p.split(".")[1].startswith("view_")}


def held(group: str) -> set[str]:
    return {
        f"{app_label}.{codename}"
        for app_label, codename in Group.objects.get(name=group).permissions.values_list(
            "content_type__app_label", "codename"
        )
    }


def test_migrating_creates_the_three_groups_with_their_permissions() -> None:
    assert held(VIEWERS) == all_views() >= KNOWN_VIEWS
    assert held(OPERATORS) == all_views() | {"syncs.run_sync", "syncs.manage_run", "sources.run_import"}
    admins = held(ADMINS)
    assert admins == cohortsync_permissions()
    assert admins >= {
        "syncs.approve_run",
        "syncs.add_sync",
        "syncs.change_sync",
        "syncs.delete_sync",
        "destinations.add_destination",
        "destinations.change_destination",
        "destinations.delete_destination",
        "cohorts.add_cohort",
        "cohorts.change_cohort",
        "cohorts.add_profile",
        "cohorts.change_profile",
    }


def test_the_alerts_app_joined_the_groups_without_being_listed_model_by_model() -> None:
    assert "alerts.view_alertrule" in held(VIEWERS)
    assert "alerts.send_test_alert" not in held(OPERATORS)
    assert {"alerts.change_alertrule", "alerts.send_test_alert"} <= held(ADMINS)


def test_no_group_gets_users_groups_or_the_task_queue() -> None:
    for group in (VIEWERS, OPERATORS, ADMINS):
        assert not {p for p in held(group) if p.split(".")[0] in SUPERUSER_ONLY_APP_LABELS}


def test_a_model_added_to_a_cohortsync_app_joins_the_groups_on_the_next_migrate() -> None:
    """What happens when a model lands in a covered app: its permissions follow the rules."""
    future = ContentType.objects.create(app_label="sources", model="futurething")
    for codename in ("view_futurething", "add_futurething", "change_futurething", "pause_futurething"):
        Permission.objects.create(content_type=future, codename=codename, name=codename)
    outsider = ContentType.objects.create(app_label="thirdparty", model="widget")
    Permission.objects.create(content_type=outsider, codename="view_widget", name="view widget")

    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")

    assert "sources.view_futurething" in held(VIEWERS)
    assert {"sources.view_futurething"} == {p for p in held(OPERATORS) if "futurething" in p}
    assert {"sources.view_futurething", "sources.add_futurething", "sources.change_futurething",
            "sources.pause_futurething"} <= held(ADMINS)
    assert not any("thirdparty." in p for group in (VIEWERS, OPERATORS, ADMINS) for p in held(group))


def test_groups_are_brought_back_to_their_rules_and_hand_made_extras_elsewhere_kept() -> None:
    viewers = Group.objects.get(name=VIEWERS)
    viewers.permissions.add(
        Permission.objects.get(codename="change_destination"),
        Permission.objects.get(codename="view_user"),
    )
    viewers.permissions.remove(Permission.objects.get(codename="view_syncrun"))
    Group.objects.get(name=ADMINS).delete()

    changes = {change.group: change for change in roles_sync()}

    assert (changes[VIEWERS].added, changes[VIEWERS].removed) == (1, 1)
    assert held(VIEWERS) == all_views() | {"auth.view_user"}
    assert "syncs.approve_run" in held(ADMINS)
    assert all((c.added, c.removed) == (0, 0) for c in roles_sync()), "a second pass changes nothing"


def test_every_installed_app_is_either_covered_by_the_roles_or_left_to_superusers() -> None:
    """A new app must decide: its label goes in COHORTSYNC_APP_LABELS or the superuser list."""
    unclassified = {
        config.label
        for config in apps.get_app_configs()
        if config.label not in COHORTSYNC_APP_LABELS | SUPERUSER_ONLY_APP_LABELS
    }

    assert unclassified == set(), f"add these app labels to roles/services.py: {sorted(unclassified)}"
