"""`manage.py run_sync NAME [--inline] [--dry-run] [--full] [--json]`: output and exit codes."""

from __future__ import annotations

import datetime as dt
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from syncs.models import RunStatus, SyncRun
from tests.factories import SyncFactory, SyncRunFactory
from tests.syncs.fakes import (  # noqa: F401
    FakeConnector,
    Rejection,
    fake_connector_fixture,
    pro_profile,
    set_plan,
)

pytestmark = pytest.mark.django_db


def _run_sync(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    try:
        call_command("run_sync", *args, stdout=out, stderr=io.StringIO())
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue()
    return 0, out.getvalue()


def test_inline_json_prints_the_counts_and_exits_0(fake: FakeConnector) -> None:
    ana = pro_profile("ana@example.com")
    pro_profile("bob@example.com")
    pro_profile(None)
    sync = SyncFactory(name="Pro users to SFMC", options={"removal_guard_ratio": 1.0})
    _run_sync(sync.name, "--inline")
    set_plan(ana, "free")
    pro_profile("carol@example.com")

    code, out = _run_sync(sync.name, "--inline", "--json")

    summary = json.loads(out)
    run = SyncRun.objects.get(pk=summary["run_id"])
    assert code == 0
    assert run.trigger == SyncRun.Trigger.CLI
    assert {k: summary[k] for k in ("status", "added", "removed", "failed", "skipped", "error")} == {
        "status": "succeeded", "added": 1, "removed": 1, "failed": 0, "skipped": 1, "error": None,
    }
    assert summary["api_calls"] == 2 and summary["duration_seconds"] >= 0


def test_partial_run_exits_1_with_the_failure_count(fake: FakeConnector) -> None:
    pro_profile("ana@example.com")
    pro_profile("bad@example.com")
    fake.reject["bad@example.com"] = Rejection(code="1003")
    sync = SyncFactory()

    code, out = _run_sync(sync.name, "--inline", "--json")

    summary = json.loads(out)
    assert (code, summary["status"], summary["added"], summary["failed"]) == (1, "partial", 1, 1)
    assert "1003" in summary["error"]


def test_failed_run_exits_2(fake: FakeConnector) -> None:
    from destinations.errors import AuthenticationError

    fake.validation_error = AuthenticationError("SFMC refused the client id and secret.")
    sync = SyncFactory()

    code, out = _run_sync(sync.name, "--inline", "--json")

    assert code == 2
    assert json.loads(out)["error"].startswith("SFMC refused the client id and secret.")


def test_dry_run_and_full_flags(fake: FakeConnector) -> None:
    pro_profile("ana@example.com")
    sync = SyncFactory()

    code, out = _run_sync(sync.name, "--inline", "--dry-run", "--json")
    assert code == 0 and json.loads(out)["dry_run"] is True and json.loads(out)["planned_adds"] == 1
    assert fake.pushes == []

    _run_sync(sync.name, "--inline")
    fake.forget_pushes()
    code, out = _run_sync(sync.name, "--inline", "--full", "--json")
    assert code == 0 and json.loads(out)["added"] == 1
    assert len(fake.pushed) == 1


def test_held_run_exits_4(fake: FakeConnector) -> None:
    ana = pro_profile("ana@example.com")
    sync = SyncFactory()
    _run_sync(sync.name, "--inline")
    set_plan(ana, "free")

    code, out = _run_sync(sync.name, "--inline", "--json")

    assert code == 4 and json.loads(out)["status"] == RunStatus.AWAITING_APPROVAL
    # What approving it would send: the data extension's reads and one rowset.
    assert json.loads(out)["projected_api_calls"] == {"min": 3, "max": 3}


def test_without_inline_the_run_is_queued_and_exits_3(fake: FakeConnector) -> None:
    sync = SyncFactory()

    code, out = _run_sync(sync.name, "--json")

    assert code == 3 and json.loads(out)["status"] == RunStatus.QUEUED
    assert fake.pushes == []


def test_an_active_run_exits_6_without_starting_another(fake: FakeConnector) -> None:
    sync = SyncFactory()
    active = SyncRunFactory(sync=sync, status=RunStatus.QUEUED)

    code, out = _run_sync(sync.name, "--inline", "--json")

    summary = json.loads(out)
    assert code == 6 and summary["status"] == "conflict" and summary["run_id"] == active.pk
    assert SyncRun.objects.filter(sync=sync).count() == 1


def test_unknown_sync_name_is_a_usage_error() -> None:
    with pytest.raises(CommandError, match="No sync is called 'Nope'") as error:
        call_command("run_sync", "Nope")
    assert error.value.returncode == 64


def test_human_output_mentions_the_counts(fake: FakeConnector) -> None:
    pro_profile("ana@example.com")
    sync = SyncFactory(name="Pro users")

    code, out = _run_sync(sync.name, "--inline")

    assert code == 0
    assert "of Pro users: succeeded" in out and "acknowledged: +1 / -0" in out


def test_a_dry_run_reports_the_api_calls_its_plan_would_take(fake: FakeConnector) -> None:
    """An SFMC data extension of 2 rows per rowset: 2 reads of the data extension, then one
    rowset per 2 users. Before any run validated the column, creating it may take up to 8
    more calls."""
    for n in range(3):
        pro_profile(f"user{n}@example.com")
    sync = SyncFactory(name="Pro users", destination__options={"rowset_batch_size": 2})

    code, out = _run_sync(sync.name, "--inline", "--dry-run", "--json")

    assert code == 0 and json.loads(out)["projected_api_calls"] == {"min": 4, "max": 12}

    _run_sync(sync.name, "--inline")
    for n in range(3, 8):
        pro_profile(f"user{n}@example.com")
    code, out = _run_sync(sync.name, "--inline", "--dry-run", "--json")
    assert code == 0 and json.loads(out)["projected_api_calls"] == {"min": 5, "max": 5}

    # A run that sends reports what it did (api_calls), not a projection.
    code, out = _run_sync(sync.name, "--inline", "--json")
    assert code == 0 and json.loads(out)["projected_api_calls"] is None


def test_a_dry_run_projection_open_ended_by_status_polls_has_no_maximum(fake: FakeConnector) -> None:
    for n in range(3):
        pro_profile(f"user{n}@example.com")
    sync = SyncFactory(destination__options={"async_threshold": 2}, options={"create_missing_field": False})

    code, out = _run_sync(sync.name, "--inline", "--dry-run", "--json")

    # 2 reads, one async upsert of the 3 rows and at least one poll of its status.
    assert code == 0 and json.loads(out)["projected_api_calls"] == {"min": 4, "max": None}


def test_human_dry_run_output_says_what_sending_would_take(fake: FakeConnector) -> None:
    pro_profile("ana@example.com")
    sync = SyncFactory(name="Pro users", options={"create_missing_field": False})

    code, out = _run_sync(sync.name, "--inline", "--dry-run")

    assert code == 0
    assert "sending this plan would take 3 API calls: 2 to read the data extension and its columns; " \
        "1 for rowset upserts (up to 50 rows each). Token (identity) requests are not counted." in out


def test_a_projection_that_fails_leaves_the_dry_run_as_it_was(fake: FakeConnector, monkeypatch, caplog) -> None:
    def broken(**kwargs: object) -> None:
        raise ValueError("no projection today")

    monkeypatch.setattr("syncs.engine.runner.plan_calls_project", broken)
    pro_profile("ana@example.com")
    sync = SyncFactory()

    code, out = _run_sync(sync.name, "--inline", "--dry-run", "--json")

    summary = json.loads(out)
    assert code == 0 and summary["planned_adds"] == 1 and summary["projected_api_calls"] is None
    assert "could not be projected" in caplog.text


def test_a_marketo_dry_run_reports_the_daily_quota_left_and_when_it_resets(sandbox) -> None:
    from django.core.cache import cache

    from destinations.marketo.settings import quota_resets_at
    from tests.factories import DestinationFactory

    # No token from an earlier test: the emulator would refuse it, a call it does not count.
    cache.clear()
    destination = DestinationFactory(
        marketo=True, base_url=sandbox.marketo_base_url, client_id="sandbox-client-id",
        client_secret="sandbox-client-secret", options={"batch_size": 2, "daily_call_quota": 40},
    )
    for n in range(3):
        pro_profile(f"quota{n}@example.com")
    sync = SyncFactory(destination=destination, target_field="cohortProUsers")
    _run_sync(sync.name, "--inline")
    used = sandbox.sandboxes.marketo.state()["calls"]["daily_used"]
    pro_profile("late@example.com")

    code, out = _run_sync(sync.name, "--inline", "--dry-run", "--json")

    summary = json.loads(out)
    assert code == 0 and used > 0
    assert summary["daily_quota_left"] == 40 - used
    assert summary["quota_resets_at"] == quota_resets_at(dt.datetime.now(dt.UTC)).isoformat()
    code, out = _run_sync(sync.name, "--inline", "--dry-run")
    assert f"the account has {40 - used} of its 40 calls left today" in out


def test_an_sfmc_dry_run_has_no_daily_quota(fake: FakeConnector) -> None:
    pro_profile("ana@example.com")
    sync = SyncFactory()

    code, out = _run_sync(sync.name, "--inline", "--dry-run", "--json")

    summary = json.loads(out)
    assert (summary["daily_quota_left"], summary["quota_resets_at"]) == (None, None)
