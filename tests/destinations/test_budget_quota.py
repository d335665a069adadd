"""A Marketo sync run that would cross daily_call_quota stops with quota_exhausted before
Marketo answers 607, says when the quota resets, and the next run after the reset resumes
from the synced state: in the memory store and in Redis (the database store is exercised
across real processes in test_budget_processes.py)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.test import override_settings

from destinations.budget import budget_store
from destinations.budget_stores import RedisBudgetStore
from syncs.models import RunStatus
from tests.factories import DestinationFactory, SyncFactory
from tests.syncs.fakes import pro_profile, run_now, synced_state

REDIS_URL = "redis://127.0.0.1:6379/0"
LEADS = 14
QUOTA = 5
SYNC_CALLS = "POST /rest/v1/leads.json"


@pytest.fixture(params=["memory", "redis"])
def store_name(request) -> Iterator[str]:
    cache.clear()
    if request.param == "memory":
        yield "memory"
        return
    with override_settings(COHORTSYNC_API_BUDGET_STORE="redis", REDIS_URL=REDIS_URL,
                           TASK_QUEUE_NAME=f"cohortsync-test-{uuid.uuid4().hex}"):
        store = budget_store()
        assert isinstance(store, RedisBudgetStore)
        yield "redis"
        store.clear()


def test_a_run_stops_before_crossing_the_daily_quota_and_the_next_day_resumes(
    db, sandbox, store_name, monkeypatch
) -> None:
    marketo = sandbox.sandboxes.marketo
    # Marketo itself would allow one call more: a 607 would mean the budget let one through.
    marketo.configure(daily_quota=QUOTA + 1)
    destination = DestinationFactory(
        marketo=True, base_url=sandbox.marketo_base_url, client_id="sandbox-client-id",
        client_secret="sandbox-client-secret",
        options={"batch_size": 2, "max_concurrency": 1, "daily_call_quota": QUOTA},
    )
    emails = [f"quota{n:02d}@example.com" for n in range(LEADS)]
    for email in emails:
        pro_profile(email)
    sync = SyncFactory(destination=destination, target_field="cohortProUsers")

    stopped = run_now(sync)

    assert stopped.status == RunStatus.PARTIAL
    assert stopped.error_code == "quota_exhausted"
    assert "daily_call_quota" in stopped.error_message
    resets = _next_chicago_midnight()
    assert f"{resets:%Y-%m-%d %H:%M} UTC" in stopped.error_message
    calls = marketo.state()["calls"]
    assert calls["daily_used"] == QUOTA and calls["refused"] == {}
    # The field check took one call, the other four each wrote two leads.
    sent = calls["by_endpoint"][SYNC_CALLS]
    assert sent == QUOTA - 1
    acknowledged = synced_state(sync)
    assert len(acknowledged) == 2 * sent and set(acknowledged.values()) == {True}

    # Midnight in Chicago: Marketo's quota resets, and so does the budget's day.
    marketo.configure(daily_quota=50_000)
    tomorrow = resets + dt.timedelta(minutes=1)
    monkeypatch.setattr("destinations.marketo.client._utcnow", lambda: tomorrow)

    resumed = run_now(sync)

    assert resumed.status == RunStatus.SUCCEEDED, resumed.error_message
    assert resumed.planned_adds == LEADS - 2 * sent
    assert synced_state(sync) == dict.fromkeys(emails, True)
    assert all(marketo.lead(email)["cohortProUsers"] is True for email in emails)
    calls = marketo.state()["calls"]
    # Every lead was written once: 14 leads, 2 a call.
    assert calls["by_endpoint"][SYNC_CALLS] == LEADS // 2
    assert calls["refused"] == {}


def _next_chicago_midnight() -> dt.datetime:
    from destinations.marketo.settings import quota_resets_at

    return quota_resets_at(dt.datetime.now(dt.UTC))
