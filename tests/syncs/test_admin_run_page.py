"""The run page: timing, counts, plan sample, failures (paged and searchable), live refresh."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from syncs.models import RunStatus, SyncFailure, SyncRun
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
    for text in ("Partially failed", "2 min 5 s", "Skipped before sending", "<strong>10</strong>",
                 "<strong>27</strong>", "bad@example", "Invalid email", "u-77", "No $email property"):
        assert text in page
    assert reverse("admin:syncs_syncrun_failures_csv", args=[run.pk]) in page
    assert 'http-equiv="refresh"' not in page


def test_running_run_refreshes_itself(admin_client):
    run = SyncRunFactory(status=RunStatus.RUNNING, started_at=timezone.now(), planned_adds=500,
                         attempted_adds=200, succeeded_adds=200)

    page = admin_client.get(run_url(run)).content.decode()

    assert 'http-equiv="refresh"' in page
    assert "so far" in page


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
    assert "Dry run" in response.content.decode()


def test_failures_are_paged_without_counting(admin_client):
    run = finished_run(failed_adds=120)
    failures = SyncFailureFactory.create_batch(120, run=run)

    with capture_queries() as queries:
        first = admin_client.get(run_url(run))
    assert count_queries_on(queries, SyncFailure._meta.db_table) == []
    assert [f.pk for f in first.context["failures"]] == [f.pk for f in failures[:50]]
    assert first.context["failures_next_url"]

    last = admin_client.get(run_url(run), {"page": 3})
    assert [f.pk for f in last.context["failures"]] == [f.pk for f in failures[100:]]
    assert last.context["failures_next_url"] == ""
    assert last.context["failures_previous_url"]


def test_failures_search_by_identity_distinct_id_or_code(admin_client):
    run = finished_run()
    target = SyncFailureFactory(run=run, identity_value="find.me@example.com", distinct_id="u-9")
    SyncFailureFactory.create_batch(3, run=run)
    coded = SyncFailureFactory(run=run, code="607")

    by_identity = admin_client.get(run_url(run), {"q": "find.me@example.com"})
    by_distinct_id = admin_client.get(run_url(run), {"q": "u-9"})
    by_code = admin_client.get(run_url(run), {"q": "607"})
    nothing = admin_client.get(run_url(run), {"q": "nobody@example.com"})

    assert [f.pk for f in by_identity.context["failures"]] == [target.pk]
    assert [f.pk for f in by_distinct_id.context["failures"]] == [target.pk]
    assert [f.pk for f in by_code.context["failures"]] == [coded.pk]
    assert "No failure matches" in nothing.content.decode()
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
    assert "1,187 ✓ / 3 ✗" in page
    assert "39 ✓ / 1 ✗" in page
