"""Imports on django-q2 schedules, and a scheduled sync that runs after a due import."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from cohorts.models import Profile
from sources.models import ImportRun, ImportRunStatus, ProfileImport
from sources.schedules import IMPORT_SCHEDULE_FUNC, import_schedule_name, import_schedule_update
from sources.services import import_is_due, import_run_create
from sources.tasks import run_scheduled_import
from syncs.models import SyncRun
from syncs.tasks import run_scheduled_sync
from tests.factories import ProfileImportFactory, SyncFactory
from tests.sources.conftest import AppDatabase
from tests.syncs.fakes import FakeConnector, fake_connector_fixture  # noqa: F401  (the `fake` fixture)

pytestmark = pytest.mark.django_db


def _schedule(profile_import: ProfileImport) -> Schedule | None:
    return Schedule.objects.filter(name=import_schedule_name(profile_import.pk)).first()


def _due_now(profile_import: ProfileImport) -> None:
    """As django-q2 leaves it when it created the task of the slot that just came due."""
    Schedule.objects.filter(name=import_schedule_name(profile_import.pk)).update(
        next_run=timezone.now() + dt.timedelta(minutes=profile_import.every_minutes) - dt.timedelta(seconds=5)
    )


def test_an_import_is_scheduled_only_while_enabled_with_an_interval() -> None:
    profile_import = ProfileImportFactory(every_minutes=10)
    import_schedule_update(profile_import=profile_import)
    schedule = _schedule(profile_import)
    assert schedule is not None
    assert (schedule.func, schedule.minutes, schedule.args) == (IMPORT_SCHEDULE_FUNC, 10, f"({profile_import.pk},)")

    profile_import.enabled = False
    profile_import.save()
    import_schedule_update(profile_import=profile_import)
    assert _schedule(profile_import) is None

    profile_import.enabled, profile_import.every_minutes = True, None
    import_schedule_update(profile_import=profile_import)
    assert _schedule(profile_import) is None

    profile_import.every_minutes = 5
    import_schedule_update(profile_import=profile_import)
    pk = profile_import.pk
    profile_import.delete()
    assert not Schedule.objects.filter(name=import_schedule_name(pk)).exists()


def test_setup_schedules_converges_imports_too() -> None:
    scheduled = ProfileImportFactory(every_minutes=15)
    ProfileImportFactory()
    Schedule.objects.create(name=import_schedule_name(999_999), func=IMPORT_SCHEDULE_FUNC, minutes=1)
    out = io.StringIO()

    call_command("setup_schedules", stdout=out)

    assert "2 profile import(s) checked" in out.getvalue()
    names = set(Schedule.objects.filter(func=IMPORT_SCHEDULE_FUNC).values_list("name", flat=True))
    assert names == {import_schedule_name(scheduled.pk)}


def test_a_scheduled_import_runs_when_due_and_not_twice_in_a_slot(sqlite_app_db: AppDatabase) -> None:
    sqlite_app_db.create_users()
    sqlite_app_db.insert_user("u1")
    profile_import = ProfileImportFactory(source=sqlite_app_db.source(), every_minutes=5)
    import_schedule_update(profile_import=profile_import)
    _due_now(profile_import)

    first = run_scheduled_import(profile_import.pk)

    assert first["status"] == ImportRunStatus.SUCCEEDED
    assert ImportRun.objects.get().trigger == ImportRun.Trigger.SCHEDULE
    assert run_scheduled_import(profile_import.pk) == {"import_id": profile_import.pk, "status": "not_due"}
    assert ImportRun.objects.count() == 1


def test_a_slot_firing_while_a_run_is_active_records_a_skipped_run(sqlite_app_db: AppDatabase) -> None:
    profile_import = ProfileImportFactory(source=sqlite_app_db.source(), every_minutes=5)
    import_schedule_update(profile_import=profile_import)
    active = import_run_create(profile_import=profile_import, trigger=ImportRun.Trigger.MANUAL)
    ImportRun.objects.filter(pk=active.pk).update(created_at=timezone.now() - dt.timedelta(minutes=10),
                                                 status=ImportRunStatus.RUNNING, heartbeat_at=timezone.now())
    _due_now(profile_import)

    result = run_scheduled_import(profile_import.pk)

    skipped = ImportRun.objects.get(pk=result["run_id"])
    assert skipped.status == ImportRunStatus.SKIPPED
    assert f"Run #{active.pk} was still going" in skipped.error_message


def test_a_scheduled_sync_runs_a_due_import_first_and_plans_on_its_profiles(
    sqlite_app_db: AppDatabase, fake: FakeConnector
) -> None:
    sqlite_app_db.create_users()
    sqlite_app_db.insert_user("u1", email="ana@example.com", plan="pro", version=1)
    profile_import = ProfileImportFactory(source=sqlite_app_db.source(), every_minutes=5,
                                          incremental_column="version",
                                          sql='SELECT id AS distinct_id, email AS "$email", plan, version FROM users')
    import_schedule_update(profile_import=profile_import)
    sync = SyncFactory()  # the default factory cohort: plan = pro
    _due_now(profile_import)
    assert import_is_due(profile_import=profile_import, now=timezone.now())

    result = run_scheduled_sync(sync.pk)

    import_run = ImportRun.objects.get()
    sync_run = SyncRun.objects.get(pk=result["run_id"])
    assert (import_run.trigger, import_run.status) == (ImportRun.Trigger.BEFORE_SYNC, ImportRunStatus.SUCCEEDED)
    assert import_run.finished_at <= sync_run.started_at
    assert fake.pushed_values() == {"ana@example.com": True}
    # The import's own task for this slot then finds it done.
    assert run_scheduled_import(profile_import.pk)["status"] == "not_due"
    assert Profile.objects.count() == 1

    # Not due: the next scheduled sync does not run it again.
    sqlite_app_db.insert_user("u2", email="ben@example.com", plan="pro", version=2)
    run_scheduled_sync(sync.pk)
    assert ImportRun.objects.count() == 1


def test_a_scheduled_sync_waits_for_a_running_import_then_goes_on(
    sqlite_app_db: AppDatabase, fake: FakeConnector, settings, caplog
) -> None:
    settings.COHORTSYNC_IMPORT_WAIT_SECONDS = 0.3
    profile_import = ProfileImportFactory(source=sqlite_app_db.source(), every_minutes=5)
    import_schedule_update(profile_import=profile_import)
    running = import_run_create(profile_import=profile_import, trigger=ImportRun.Trigger.MANUAL)
    ImportRun.objects.filter(pk=running.pk).update(status=ImportRunStatus.RUNNING, heartbeat_at=timezone.now())
    sync = SyncFactory()

    started = timezone.now()
    result = run_scheduled_sync(sync.pk)

    assert timezone.now() - started >= dt.timedelta(seconds=0.3)
    assert SyncRun.objects.get(pk=result["run_id"]).status == "succeeded"
    assert "stopped waiting for import" in caplog.text
    assert ImportRun.objects.count() == 1
