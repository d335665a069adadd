"""The demo's application database: seeded with a source, a scheduled import and an SQL
cohort; it changes on its own and the dynamic syncs follow, with no file uploaded."""

from __future__ import annotations

import datetime as dt
import io
import sqlite3

import pytest
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from cohorts.models import Cohort, Profile
from cohorts.selectors import cohort_member_count
from sources.demo import TICK_FUNC, TICK_SCHEDULE_NAME, application_tick
from sources.models import ImportRun, ProfileImport, Source
from sources.schedules import import_schedule_name
from syncs.models import RunStatus, Sync, SyncRun
from syncs.tasks import run_scheduled_sync

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_application(tmp_path, settings) -> None:  # type: ignore[no-untyped-def]
    settings.COHORTSYNC_DEMO_APP_DB = tmp_path / "demo-app.sqlite3"
    cache.clear()


@pytest.fixture
def seed(django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    def run(sandbox_url: str, profiles: int = 200) -> str:
        out = io.StringIO()
        # As in production: schedules are written once the seed's transaction commits.
        with django_capture_on_commit_callbacks(execute=True):
            call_command("seed_demo", "--sandbox-url", sandbox_url, "--profiles", str(profiles), stdout=out)
        return out.getvalue()

    return run


def _pro_ids() -> set[str]:
    return {p.distinct_id for p in Profile.objects.all() if p.properties.get("plan") == "pro"}


def test_seed_demo_creates_a_source_a_scheduled_import_and_an_sql_cohort(seed) -> None:  # type: ignore[no-untyped-def]
    output = seed("http://127.0.0.1:8765")

    source = Source.objects.get(name="Demo application database")
    assert source.url == f"sqlite:///{settings.COHORTSYNC_DEMO_APP_DB.resolve()}"
    rows = sqlite3.connect(settings.COHORTSYNC_DEMO_APP_DB).execute("SELECT COUNT(*) FROM app_users").fetchone()
    assert rows == (200,)
    users = ProfileImport.objects.get(name="Application users")
    assert (users.every_minutes, users.incremental_column) == (1, "updated_at")
    assert Schedule.objects.filter(name=import_schedule_name(users.pk)).exists()
    assert Schedule.objects.get(name=TICK_SCHEDULE_NAME).func == TICK_FUNC
    cohort = Cohort.objects.get(name="Team and enterprise accounts (SQL)")
    assert cohort.kind == Cohort.Kind.SQL and cohort_member_count(cohort) > 0
    assert "the demo application database changes every minute" in output
    # The four original syncs are still there, under their names.
    assert {"Pro users → SFMC data extension", "Churn risk → SFMC contacts", "Recent signups → Marketo",
            "VIP customers → Marketo (one-time)"} <= set(Sync.objects.values_list("name", flat=True))

    # Seeding again duplicates nothing, and keeps what the application changed.
    application_tick(str(settings.COHORTSYNC_DEMO_APP_DB), seed=3)
    seed("http://127.0.0.1:8765")
    rows = sqlite3.connect(settings.COHORTSYNC_DEMO_APP_DB).execute("SELECT COUNT(*) FROM app_users").fetchone()
    assert rows == (201,)
    assert Source.objects.count() == 1 and ProfileImport.objects.count() == 1
    assert Schedule.objects.filter(name=TICK_SCHEDULE_NAME).count() == 1


@pytest.mark.e2e
def test_the_application_changes_and_dynamic_syncs_follow_without_an_upload(sandbox, seed) -> None:  # type: ignore[no-untyped-def]
    seed(sandbox.url)
    pro_sync = Sync.objects.get(name="Pro users → SFMC data extension")
    sql_sync = Sync.objects.get(name="Team and enterprise (SQL) → SFMC data extension")
    for sync in (pro_sync, sql_sync):
        first = run_scheduled_sync(sync.pk)  # the due import runs first (every row: a full read)
        assert first["status"] == RunStatus.SUCCEEDED, SyncRun.objects.get(pk=first["run_id"]).error_message
    assert ImportRun.objects.get().rows_read == 200
    pro_before = _pro_ids()

    # A minute of the application: plan changes, returning users, a signup.
    changes = application_tick(str(settings.COHORTSYNC_DEMO_APP_DB), seed=7)
    # The import's next slot comes (django-q2 moves next_run on as it fires it).
    Schedule.objects.filter(name=import_schedule_name(ProfileImport.objects.get().pk)).update(
        next_run=timezone.now() + dt.timedelta(minutes=1) - dt.timedelta(seconds=1))
    result = run_scheduled_sync(pro_sync.pk)

    imported = ImportRun.objects.order_by("-pk").first()
    assert imported.trigger == ImportRun.Trigger.BEFORE_SYNC
    assert imported.created == changes["signups"]
    assert 0 < imported.rows_read < 200  # only what changed (and the boundary)
    pro_after = _pro_ids()
    assert pro_after != pro_before
    run = SyncRun.objects.get(pk=result["run_id"])
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert (run.succeeded_adds, run.succeeded_removes) == (len(pro_after - pro_before), len(pro_before - pro_after))

    sql_run = SyncRun.objects.get(pk=run_scheduled_sync(sql_sync.pk)["run_id"])
    assert sql_run.status == RunStatus.SUCCEEDED, sql_run.error_message
