"""The run page: timing, counts, live progress, the plan, failures (rejected before skipped,
each counted, paged and searchable)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from syncs.models import RunPlanChunk, RunStatus, SyncFailure, SyncRun
from tests.factories import SyncFailureFactory, SyncRunFactory
from tests.syncs.admin_helpers import capture_queries, count_queries_on, staff_client

pytestmark = pytest.mark.django_db


def run_url(run: SyncRun) -> str:
    return reverse("admin:syncs_syncrun_change", args=[run.pk])


def finished_run(**kwargs) -> SyncRun:
    started = timezone.now() - dt.timedelta(minutes=3)
    values = {
        "status": RunStatus.PARTIAL,
        "started_at": started,
        "heartbeat_at": started + dt.timedelta(seconds=90),
        "finished_at": started + dt.timedelta(seconds=125),
        "planned_adds": 1200,
        "attempted_adds": 1190,
        "succeeded_adds": 1187,
        "failed_adds": 3,
        "planned_removes": 40,
        "attempted_removes": 40,
        "succeeded_removes": 39,
        "failed_removes": 1,
        "skipped_users": 10,
        "api_calls": 27,
    }
    return SyncRunFactory(**{**values, **kwargs})


def test_run_page_shows_counts_timing_and_failures(admin_client):
    run = finished_run()
    SyncFailureFactory(run=run, identity_value="bad@example", code="1003", message="Invalid email")
    SyncFailureFactory(
        run=run, identity_value="", distinct_id="u-77", code="missing_identity",
        message="No $email property", operation=SyncFailure.Operation.SKIP,
    )

    response = admin_client.get(run_url(run))

    assert response.status_code == 200
    page = response.content.decode()
    counts = [(r.planned, r.attempted, r.succeeded, r.failed) for r in response.context["counts"]]
    assert counts == [(1200, 1190, 1187, 3), (40, 40, 39, 1)]
    for text in ("Partially failed", "2 min 5 s", "Skipped before sending", 'data-count="skipped_users">10<',
                 'data-count="api_calls">27<', "bad@example", "Invalid email", "u-77", "No $email property",
                 'data-count="planned_adds">1,200<'):
        assert text in page
    assert reverse("admin:syncs_syncrun_failures_csv", args=[run.pk]) in page
    assert 'http-equiv="refresh"' not in page
    assert 'data-live="false"' in page


def test_a_running_run_shows_its_progress_and_polls_for_more(admin_client):
    run = SyncRunFactory(status=RunStatus.RUNNING, started_at=timezone.now() - dt.timedelta(seconds=20),
                         planned_adds=500, attempted_adds=200, succeeded_adds=200)

    response = admin_client.get(run_url(run))

    page = response.content.decode()
    assert "so far" in page
    assert 'id="run-progress-bar" max="100" value="40.0"' in page
    assert "200 of 500 planned users attempted (40%)" in page
    assert "10 users/s" in page and "about 30 s left" in page
    progress_url = reverse("admin:syncs_syncrun_progress", args=[run.pk])
    assert f'data-url="{progress_url}" data-live="true"' in page
    # Without scripts, the page still reloads itself; with them, only the progress is fetched.
    assert '<noscript><meta http-equiv="refresh"' in page


def test_a_run_still_planning_has_a_bar_without_a_value(admin_client):
    run = SyncRunFactory(status=RunStatus.RUNNING, started_at=timezone.now())

    page = admin_client.get(run_url(run)).content.decode()

    assert '<progress id="run-progress-bar" max="100" aria-describedby' in page
    assert "Planning: counting the users to add and remove" in page


def test_run_level_error_is_shown(admin_client):
    run = finished_run(status=RunStatus.FAILED, error_code="auth",
                       error_message="SFMC refused the client id and secret. Check the installed package.")

    page = admin_client.get(run_url(run)).content.decode()

    assert "SFMC refused the client id and secret. Check the installed package. [auth]" in page


def test_dry_run_plan_sample_is_listed(admin_client):
    run = finished_run(
        status=RunStatus.SUCCEEDED, is_dry_run=True, planned_adds=2, planned_removes=1,
        plan_sample={"add": ["ana@example.com", {"identity": "bo@example.com", "distinct_id": "u-2"}],
                     "remove": ["cy@example.com"]},
    )

    response = admin_client.get(run_url(run))

    plan = response.context["plan"]
    assert plan.adds == ["ana@example.com", "bo@example.com (u-2)"]
    assert plan.removes == ["cy@example.com"]
    page = response.content.decode()
    assert "Dry run" in page
    assert "Dry run: 3 users planned, nothing sent." in page
    # Made before whole plans were kept: the page says only the sample remains.
    assert "only a sample of the 2 users to add and 1 to remove remains" in page
    assert reverse("admin:syncs_syncrun_plan_csv", args=[run.pk]) not in page


def test_a_recorded_plan_offers_its_csv(admin_client):
    run = finished_run(status=RunStatus.SUCCEEDED, is_dry_run=True, planned_adds=1, planned_removes=0)
    RunPlanChunk.objects.create(run=run, first_seq=1, is_member=True, users=1,
                                identities='["ana@example.com"]', profile_ids="[null]")

    page = admin_client.get(run_url(run)).content.decode()

    assert "1 user to add and 0 to remove (nothing was sent)" in page
    assert f'href="{reverse("admin:syncs_syncrun_plan_csv", args=[run.pk])}">Download the whole plan (CSV)' in page


def test_failures_are_paged_without_counting(admin_client):
    run = finished_run(failed_adds=120, failed_removes=0)
    failures = SyncFailureFactory.create_batch(120, run=run)

    with capture_queries() as queries:
        first = admin_client.get(run_url(run))
    assert count_queries_on(queries, SyncFailure._meta.db_table) == []
    rejected = group(first, "rejected")
    assert [f.pk for f in rejected.rows] == [f.pk for f in failures[:50]]
    assert rejected.next_url and rejected.count == 120

    last = group(admin_client.get(run_url(run), {"page": 3}), "rejected")
    assert [f.pk for f in last.rows] == [f.pk for f in failures[100:]]
    assert last.next_url == ""
    assert last.previous_url


def group(response, key: str):
    return next(g for g in response.context["failure_groups"] if g.key == key)


def test_rejected_users_come_before_skipped_ones_each_counted(admin_client):
    # Issue 15: 18 skipped users were listed before the 4 real rejections.
    run = finished_run(failed_adds=3, failed_removes=1, skipped_users=18)
    SyncFailureFactory.create_batch(18, run=run, operation=SyncFailure.Operation.SKIP, code="missing_identity")
    rejected = SyncFailureFactory.create_batch(3, run=run, code="1003")
    rejected.append(SyncFailureFactory(run=run, code="1006", operation=SyncFailure.Operation.REMOVE))

    response = admin_client.get(run_url(run))

    assert [g.key for g in response.context["failure_groups"]] == ["rejected", "skipped"]
    assert [f.pk for f in group(response, "rejected").rows] == [f.pk for f in rejected]
    assert len(group(response, "skipped").rows) == 18
    page = response.content.decode()
    assert page.index('id="failures-rejected"') < page.index('id="failures-skipped"')
    assert 'Rejected by the destination: <span class="failure-count">4</span>' in page
    assert 'Skipped before sending (no or invalid identity): <span class="failure-count">18</span>' in page


def test_each_group_pages_on_its_own(admin_client):
    run = finished_run(failed_adds=60, failed_removes=0, skipped_users=60)
    SyncFailureFactory.create_batch(60, run=run, operation=SyncFailure.Operation.SKIP)
    SyncFailureFactory.create_batch(60, run=run)

    response = admin_client.get(run_url(run), {"skipped_page": 2})

    assert len(group(response, "rejected").rows) == 50 and group(response, "rejected").page == 1
    assert len(group(response, "skipped").rows) == 10 and group(response, "skipped").page == 2
    assert group(response, "rejected").next_url.endswith("?page=2&skipped_page=2#failures")


def test_skips_beyond_the_recorded_ones_are_said(admin_client):
    run = finished_run(skipped_users=5000, plan_sample={"skipped_recorded": 1000})

    page = admin_client.get(run_url(run)).content.decode()

    assert "The first 1,000 are listed" in page


def test_failures_search_by_identity_distinct_id_or_code(admin_client):
    run = finished_run()
    target = SyncFailureFactory(run=run, identity_value="find.me@example.com", distinct_id="u-9")
    SyncFailureFactory.create_batch(3, run=run)
    coded = SyncFailureFactory(run=run, code="607")

    by_identity = admin_client.get(run_url(run), {"q": "find.me@example.com"})
    by_distinct_id = admin_client.get(run_url(run), {"q": "u-9"})
    by_code = admin_client.get(run_url(run), {"q": "607"})
    nothing = admin_client.get(run_url(run), {"q": "nobody@example.com"})

    assert [f.pk for f in group(by_identity, "rejected").rows] == [target.pk]
    assert [f.pk for f in group(by_distinct_id, "rejected").rows] == [target.pk]
    assert [f.pk for f in group(by_code, "rejected").rows] == [coded.pk]
    assert "No rejection matches “nobody@example.com”" in nothing.content.decode()
    # The search form works only if it is not nested inside the (view-only) change form.
    page = nothing.content.decode()
    before = page[: page.index('<form method="get" action="#failures"')]
    assert before.count("<form") == before.count("</form>")


def test_runs_cannot_be_added_edited_or_deleted():
    run = finished_run()
    client = staff_client(["syncs.view_syncrun", "syncs.change_syncrun", "syncs.delete_syncrun",
                           "syncs.add_syncrun"])

    assert client.get(run_url(run)).status_code == 200
    assert client.get(reverse("admin:syncs_syncrun_add")).status_code == 403
    response = client.post(reverse("admin:syncs_syncrun_delete", args=[run.pk]), {"post": "yes"})
    assert response.status_code == 403
    assert SyncRun.objects.filter(pk=run.pk).exists()


def test_run_changelist_lists_counts(admin_client):
    run = finished_run()

    response = admin_client.get(reverse("admin:syncs_syncrun_changelist"), {"status": "partial"})

    page = response.content.decode()
    assert response.status_code == 200
    assert [r.pk for r in response.context["cl"].result_list] == [run.pk]
    assert '<td class="field-adds"><span title="1,187 acknowledged">1,187</span><span class="count-failed" title="3 failed to add">3 ✗</span></td>' in page
    assert '<td class="field-removes"><span title="39 acknowledged">39</span><span class="count-failed" title="1 failed to remove">1 ✗</span></td>' in page
    assert '<td class="field-skipped">10</td>' in page and '<td class="field-api_calls_count">27</td>' in page
    assert "2 min 5 s" in page
