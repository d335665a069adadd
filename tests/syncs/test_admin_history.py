"""Run history at a glance: the runs behind the markers and charts, the markers and charts
themselves, the schedule in words, on the dashboard and the sync page."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from syncs.admin_charts import changes_chart, members_chart, members_sparkline, run_markers
from syncs.admin_display import next_run_display, syncs_for_listing
from syncs.models import RunStatus, Sync, SyncRun
from syncs.schedules import sync_schedule_name
from syncs.selectors import RunPoint, run_progress, syncs_recent_runs
from tests.factories import DestinationFactory, SyncFactory, SyncRunFactory
from tests.syncs.admin_helpers import capture_queries

pytestmark = pytest.mark.django_db

INDEX = reverse("admin:index")


def make_runs(sync: Sync, count: int, **values) -> list[SyncRun]:
    start = timezone.now() - dt.timedelta(hours=count)
    runs = []
    for n in range(count):
        run = SyncRunFactory(sync=sync, status=RunStatus.SUCCEEDED, **values)
        SyncRun.objects.filter(pk=run.pk).update(created_at=start + dt.timedelta(hours=n))
        runs.append(run)
    return runs


def point(**values) -> RunPoint:
    defaults = dict(
        run_id=1, sync_id=1, status=RunStatus.SUCCEEDED, is_dry_run=False,
        created_at=timezone.now(), finished_at=None, planned_adds=0, planned_removes=0, added=0,
        removed=0, failed=0, skipped=0, acknowledged_members=None,
    )
    return RunPoint(**{**defaults, **values})


# --- The runs behind them --------------------------------------------------------------------


def test_recent_runs_are_each_syncs_latest_oldest_first_without_skipped_ticks() -> None:
    busy, quiet, idle = SyncFactory(), SyncFactory(), SyncFactory()
    busy_runs = make_runs(busy, 35)
    skipped = SyncRunFactory(sync=busy, status=RunStatus.SKIPPED)
    quiet_runs = make_runs(quiet, 3)

    with capture_queries() as queries:
        history = syncs_recent_runs(sync_ids=[busy.pk, quiet.pk, idle.pk])

    assert len(queries.captured_queries) == 2
    assert [p.run_id for p in history[busy.pk]] == [r.pk for r in busy_runs[-30:]]
    assert skipped.pk not in {p.run_id for p in history[busy.pk]}
    assert [p.run_id for p in history[quiet.pk]] == [r.pk for r in quiet_runs]
    assert history[idle.pk] == []


def test_queries_do_not_grow_with_syncs_or_history() -> None:
    syncs = [SyncFactory() for _ in range(12)]
    for sync in syncs:
        make_runs(sync, 4)

    with capture_queries() as queries:
        history = syncs_recent_runs(sync_ids=[s.pk for s in syncs], limit=3)

    assert len(queries.captured_queries) == 2
    assert {len(points) for points in history.values()} == {3}


def test_a_point_carries_what_the_run_did() -> None:
    run = SyncRunFactory(status=RunStatus.PARTIAL, succeeded_adds=10, succeeded_removes=2, failed_adds=3,
                         failed_removes=1, skipped_users=5, acknowledged_members=108)

    [only] = syncs_recent_runs(sync_ids=[run.sync_id])[run.sync_id]

    assert (only.added, only.removed, only.failed, only.skipped, only.acknowledged_members) == (10, 2, 4, 5, 108)


def test_progress_rate_and_time_left() -> None:
    now = timezone.now()
    run = SyncRunFactory(status=RunStatus.RUNNING, started_at=now - dt.timedelta(seconds=100),
                         planned_adds=3000, attempted_adds=1000)

    progress = run_progress(run, now=now)

    assert (progress.fraction, progress.rate_per_second, progress.eta_seconds) == (1000 / 3000, 10.0, 200.0)


def test_progress_of_a_queued_run_knows_nothing_yet() -> None:
    progress = run_progress(SyncRunFactory(status=RunStatus.QUEUED))

    assert (progress.fraction, progress.rate_per_second, progress.eta_seconds) == (0.0, None, None)


# --- Markers and charts ----------------------------------------------------------------------


def test_markers_link_each_run_with_what_it_did() -> None:
    moment = timezone.make_aware(dt.datetime(2026, 11, 30, 9, 15))
    html = str(run_markers([
        point(run_id=7, status=RunStatus.PARTIAL, finished_at=moment, added=120, removed=3, failed=2, skipped=4),
        point(run_id=8, is_dry_run=True, planned_adds=5, planned_removes=1, finished_at=moment),
    ]))

    assert html.count('class="run-marker ') == 2
    assert f'href="{reverse("admin:syncs_syncrun_change", args=[7])}"' in html
    assert "Run #7 · Partially failed · 30 Nov 2026, 09:15 · 120 added, 3 removed, 2 failed, 4 skipped" in html
    assert 'class="run-marker run-marker-succeeded run-marker-dry"' in html
    assert "dry run: would add 5 and remove 1, nothing sent" in html


def test_no_runs_no_markers() -> None:
    assert "No runs yet" in str(run_markers([]))


def test_members_chart_has_a_dot_per_counted_run_on_a_round_scale() -> None:
    points = [point(run_id=n, acknowledged_members=value) for n, value in enumerate([0, 410, 380, None, 455])]

    svg = str(members_chart(points))

    assert svg.startswith("<svg") and 'role="img"' in svg
    assert svg.count("<circle") == 4
    assert ">500</text>" in svg  # the scale's top
    assert "Acknowledged members after each of the last 4 runs: 0 then, 455 now" in svg
    assert "455 members acknowledged · Run #4" in svg


def test_changes_chart_draws_sent_runs_only() -> None:
    points = [
        point(run_id=1, added=40, removed=0, failed=2),
        point(run_id=2, is_dry_run=True, planned_adds=900),
        point(run_id=3, added=0, removed=12, failed=0),
    ]

    svg = str(changes_chart(points))

    assert len(re.findall(r"<rect ", svg)) == 3  # 40 added, 2 failed, 12 removed; no zero-height bars
    assert "Run #2" not in svg
    assert "40 added, 12 removed, 2 failed" in svg
    assert ">50</text>" in svg


def test_empty_charts_say_why() -> None:
    assert "No finished run has counted members yet." in str(members_chart([point()]))
    assert "No run has sent anything yet." in str(changes_chart([point(is_dry_run=True)]))
    assert str(members_sparkline([])) == "—"


# --- The schedule in words -------------------------------------------------------------------


def scheduled(sync: Sync, *, next_run: dt.datetime) -> Sync:
    Schedule.objects.create(name=sync_schedule_name(sync.pk), func="syncs.tasks.run_scheduled_sync",
                            schedule_type=Schedule.MINUTES, minutes=sync.effective_interval_minutes,
                            next_run=next_run)
    return syncs_for_listing().get(pk=sync.pk)


def words(html: str) -> str:
    """The text a person reads (timesince joins numbers and units with no-break spaces)."""
    return re.sub(r"<[^>]+>", "", html).replace("\xa0", " ")


def test_schedule_and_next_run_in_words() -> None:
    sfmc = scheduled(SyncFactory(), next_run=timezone.now() + dt.timedelta(minutes=4, seconds=30))
    marketo = scheduled(SyncFactory(destination=DestinationFactory(marketo=True)),
                        next_run=timezone.now() + dt.timedelta(minutes=90))
    daily = scheduled(SyncFactory(interval_minutes=1440), next_run=timezone.now() + dt.timedelta(hours=3))

    assert words(next_run_display(sfmc)) == "Every 15 minutes · next in 4 minutes"
    assert words(next_run_display(marketo)) == "Every 2 hours · next in 1 hour"
    assert words(next_run_display(daily)) == "Every day · next in 2 hours"


def test_a_new_sync_is_due_now_never_zero_minutes_ago() -> None:
    # Issue 15: a new sync showed "Next run due: 0 minutes ago" (its schedule fires at once).
    sync = scheduled(SyncFactory(), next_run=timezone.now() - dt.timedelta(seconds=20))

    assert words(next_run_display(sync)) == "Every 15 minutes · due now"


def test_other_schedules_in_words() -> None:
    late = scheduled(SyncFactory(), next_run=timezone.now() - dt.timedelta(hours=2))
    disabled = syncs_for_listing().get(pk=SyncFactory(enabled=False).pk)
    once = syncs_for_listing().get(pk=SyncFactory(mode=Sync.Mode.ONE_TIME).pk)
    unscheduled = syncs_for_listing().get(pk=SyncFactory().pk)

    assert words(next_run_display(late)) == "Every 15 minutes · overdue since 2 hours ago"
    assert words(next_run_display(disabled)) == "Disabled (was every 15 minutes)"
    assert words(next_run_display(once)) == "One-time export: no schedule"
    assert words(next_run_display(unscheduled)) == "Every 15 minutes · not scheduled"


# --- On the pages ----------------------------------------------------------------------------


def test_dashboard_shows_each_syncs_markers_and_members_trend(admin_client, django_assert_max_num_queries) -> None:
    sync = SyncFactory(name="Pro users")
    runs = make_runs(sync, 3, acknowledged_members=250)
    SyncRun.objects.filter(pk=runs[-1].pk).update(acknowledged_members=260, is_dry_run=True)
    SyncFactory(name="Never run")

    with django_assert_max_num_queries(12):
        response = admin_client.get(INDEX)

    page = response.content.decode()
    assert "Last 30 runs" in page
    assert page.count('class="run-marker ') == 3
    assert "run-marker-dry" in page
    assert 'class="members-sparkline"' in page and '<span class="members-now">260</span>' in page
    assert "No runs yet" in page
    # The panel takes the page's width (the index is 600 px wide by default).
    assert ".dashboard #content { width: auto; }" in page


def test_dashboard_marks_a_dry_last_run(admin_client) -> None:
    sync = SyncFactory()
    SyncRunFactory(sync=sync, status=RunStatus.SUCCEEDED, is_dry_run=True)

    page = admin_client.get(INDEX).content.decode()

    assert '<span class="run-dry" title="A dry run only plans: nothing was sent.">dry run</span>' in page


def test_sync_page_shows_its_run_history(admin_client) -> None:
    sync = SyncFactory()
    make_runs(sync, 2, acknowledged_members=40, succeeded_adds=40)

    response = admin_client.get(reverse("admin:syncs_sync_change", args=[sync.pk]))

    page = response.content.decode()
    assert 'id="run-history"' in page
    assert page.count('class="run-marker ') == 2
    assert 'class="run-chart run-chart-members"' in page and 'class="run-chart run-chart-changes"' in page
    assert f'{reverse("admin:syncs_syncrun_changelist")}?sync__id__exact={sync.pk}' in page


def test_the_add_page_has_no_history(admin_client) -> None:
    page = admin_client.get(reverse("admin:syncs_sync_add")).content.decode()

    assert 'id="run-history"' not in page
