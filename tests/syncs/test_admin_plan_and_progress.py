"""A run's plan as a streamed CSV, and its progress as JSON: exact content, and only for
staff who may view the run."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from django.http import StreamingHttpResponse
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from syncs.models import RunStatus, SyncRun
from tests.factories import ProfileFactory, SyncFactory, SyncFailureFactory, SyncRunFactory
from tests.syncs.admin_helpers import staff_client
from tests.syncs.fakes import (  # noqa: F401
    FakeConnector,
    Rejection,
    fake_connector_fixture,
    pro_profile,
    run_now,
    set_plan,
)

pytestmark = pytest.mark.django_db

HEADER = ["run", "operation", "identity", "distinct_id"]


def plan_url(run: SyncRun) -> str:
    return reverse("admin:syncs_syncrun_plan_csv", args=[run.pk])


def progress_url(run: SyncRun) -> str:
    return reverse("admin:syncs_syncrun_progress", args=[run.pk])


def csv_rows(response) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


# --- The plan CSV ----------------------------------------------------------------------------


def test_a_dry_runs_csv_lists_exactly_what_it_would_add_and_remove(admin_client, fake: FakeConnector) -> None:
    ana, bob = pro_profile("ana@example.com"), pro_profile("bob@example.com")
    cy = ProfileFactory(properties={"$email": "Cy@Example.com", "plan": "free"})
    cy_again = ProfileFactory(properties={"$email": "CY@example.com ", "plan": "free"})  # the same identity
    sync = SyncFactory()
    run_now(sync)
    set_plan(ana, "free")
    set_plan(cy, "pro")
    set_plan(cy_again, "pro")
    dry = run_now(sync, dry_run=True)

    response = admin_client.get(plan_url(dry))

    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="run-{dry.pk}-dry-run-plan.csv"'
    rows = csv_rows(response)
    assert rows[0] == HEADER
    assert sorted(rows[1:]) == [
        [str(dry.pk), "add", "cy@example.com", cy.distinct_id],
        [str(dry.pk), "remove", "ana@example.com", ""],
    ]
    assert bob.distinct_id not in str(rows)


def test_a_real_runs_csv_lists_every_planned_user_once_failed_ones_included(admin_client, fake: FakeConnector) -> None:
    profiles = {f"user{n}@example.com": pro_profile(f"user{n}@example.com") for n in range(4)}
    pro_profile(None)  # skipped: not in the plan
    fake.reject["user2@example.com"] = Rejection()
    run = run_now(SyncFactory())
    assert run.status == RunStatus.PARTIAL

    rows = csv_rows(admin_client.get(plan_url(run)))

    assert rows[0] == HEADER
    assert sorted(rows[1:]) == sorted(
        [str(run.pk), "add", email, profile.distinct_id] for email, profile in profiles.items()
    )


def test_the_csv_is_safe_to_open_in_a_spreadsheet(admin_client, fake: FakeConnector) -> None:
    pro_profile("=1+1@example.com")
    run = run_now(SyncFactory(), dry_run=True)

    rows = csv_rows(admin_client.get(plan_url(run)))

    assert rows[1][2] == "'=1+1@example.com"


def test_an_empty_plan_is_a_csv_with_its_header_only(admin_client) -> None:
    run = SyncRunFactory(status=RunStatus.SUCCEEDED)

    assert csv_rows(admin_client.get(plan_url(run))) == [HEADER]


# --- The progress JSON -----------------------------------------------------------------------


def test_progress_of_a_running_run(admin_client) -> None:
    run = SyncRunFactory(
        status=RunStatus.RUNNING, started_at=timezone.now() - dt.timedelta(seconds=50), planned_adds=900,
        planned_removes=100, attempted_adds=400, succeeded_adds=390, failed_adds=10, skipped_users=7,
        api_calls=12,
    )

    response = admin_client.get(progress_url(run))

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    progress = response.json()
    assert {key: progress[key] for key in ("run", "status", "is_live", "planned", "attempted", "succeeded",
                                           "failed", "skipped", "api_calls", "percent")} == {
        "run": run.pk, "status": "running", "is_live": True, "planned": 1000, "attempted": 400,
        "succeeded": 390, "failed": 10, "skipped": 7, "api_calls": 12, "percent": 40.0,
    }
    assert 7.9 <= progress["rate_per_second"] <= 8.0  # 400 users in ~50 s
    assert 74 <= progress["eta_seconds"] <= 76  # 600 left at 8/s
    assert progress["summary"] == "400 of 1,000 planned users attempted (40%)"
    assert progress["rate_text"] == "8 users/s"
    assert progress["eta_text"].startswith("about 1 min 1")
    assert progress["counts"]["planned_adds"] == 900 and progress["counts"]["failed_adds"] == 10
    assert "Running" in progress["status_html"]


def test_progress_of_a_finished_run_has_no_time_left(admin_client) -> None:
    started = timezone.now() - dt.timedelta(minutes=5)
    run = SyncRunFactory(status=RunStatus.SUCCEEDED, started_at=started, finished_at=started + dt.timedelta(seconds=10),
                         planned_adds=20, attempted_adds=20, succeeded_adds=20)

    progress = admin_client.get(progress_url(run)).json()

    assert (progress["is_live"], progress["percent"], progress["eta_seconds"]) == (False, 100.0, None)
    assert progress["rate_per_second"] == 2.0
    assert progress["duration"] == "10 s"


def test_progress_names_no_user(admin_client) -> None:
    run = SyncRunFactory(status=RunStatus.RUNNING, started_at=timezone.now(), planned_adds=3, attempted_adds=1,
                         failed_adds=1, plan_sample={"adds": [{"identity": "secret.person@example.com"}]})
    SyncFailureFactory(run=run, identity_value="failed.person@example.com", distinct_id="u-secret")

    body = admin_client.get(progress_url(run)).content.decode()

    for identity in ("secret.person@example.com", "failed.person@example.com", "u-secret", "@"):
        assert identity not in body
    assert set(json.loads(body)) == {
        "run", "status", "status_label", "status_html", "is_live", "is_dry_run", "planned", "attempted",
        "succeeded", "failed", "skipped", "api_calls", "percent", "rate_per_second", "eta_seconds", "summary",
        "rate_text", "eta_text", "duration", "counts",
    }


# --- Who may read them -----------------------------------------------------------------------


@pytest.mark.parametrize("url_of", [plan_url, progress_url], ids=["plan", "progress"])
def test_only_staff_who_may_view_runs_get_them(url_of) -> None:
    run = SyncRunFactory(status=RunStatus.SUCCEEDED)

    assert staff_client(["syncs.view_syncrun"]).get(url_of(run)).status_code == 200
    assert staff_client(["syncs.view_sync", "syncs.run_sync", "syncs.manage_run"]).get(url_of(run)).status_code == 403
    anonymous = Client().get(url_of(run))
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]


@pytest.mark.parametrize("name", ["admin:syncs_syncrun_plan_csv", "admin:syncs_syncrun_progress"])
@pytest.mark.parametrize("object_id", ["999999", "abc", "1.5", "-3"])
def test_unknown_or_malformed_run_ids_are_404s(admin_client, name: str, object_id: str) -> None:
    SyncRunFactory()

    assert admin_client.get(reverse(name, args=[object_id])).status_code == 404
