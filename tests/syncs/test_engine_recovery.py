"""A run whose worker died is detected, and the next run resumes without loss or repeats."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from syncs.errors import SyncRunConflict
from syncs.models import RunStatus, SyncRun
from syncs.services import runs_reap_stale, sync_run_create, sync_run_execute, sync_run_request
from syncs.tasks import reap_stale_runs
from tests.factories import SyncFactory, SyncRunFactory
from tests.syncs.fakes import (  # noqa: F401
    FakeConnector,
    WorkerKilled,
    fake_connector_fixture,
    pro_profile,
    synced_state,
)

pytestmark = pytest.mark.django_db


def _kill_mid_run(fake: FakeConnector, sync) -> SyncRun:  # type: ignore[no-untyped-def]
    fake.raise_on_push, fake.raise_on_push_call = WorkerKilled(), 2
    run = sync_run_create(sync=sync, trigger=SyncRun.Trigger.SCHEDULE)
    with pytest.raises(WorkerKilled):
        sync_run_execute(run_id=run.pk)
    fake.raise_on_push = None
    run.refresh_from_db()
    return run


def test_killed_run_is_detected_and_the_next_run_resumes(fake: FakeConnector) -> None:
    for n in range(6):
        pro_profile(f"user{n}@example.com")
    sync = SyncFactory()
    killed = _kill_mid_run(fake, sync)
    assert killed.status == RunStatus.RUNNING
    assert synced_state(sync) == {"user0@example.com": True, "user1@example.com": True}
    SyncRun.objects.filter(pk=killed.pk).update(heartbeat_at=timezone.now() - dt.timedelta(minutes=11))
    first_batch = {c.identity for c in fake.pushes[0]}
    fake.forget_pushes()

    nxt = sync_run_request(sync=sync, trigger=SyncRun.Trigger.MANUAL)
    nxt = sync_run_execute(run_id=nxt.pk)

    killed.refresh_from_db()
    assert killed.status == RunStatus.FAILED and killed.error_code == "worker_lost"
    assert killed.error_message.startswith("The worker stopped")
    sent = [c.identity for c in fake.pushed]
    assert len(sent) == 4 and not first_batch & set(sent)
    assert nxt.status == RunStatus.SUCCEEDED
    assert synced_state(sync) == {f"user{n}@example.com": True for n in range(6)}


def test_a_run_with_a_fresh_heartbeat_is_left_running(fake: FakeConnector) -> None:
    for n in range(4):
        pro_profile(f"user{n}@example.com")
    sync = SyncFactory()
    killed = _kill_mid_run(fake, sync)

    with pytest.raises(SyncRunConflict):
        sync_run_request(sync=sync, trigger=SyncRun.Trigger.MANUAL)
    killed.refresh_from_db()
    assert killed.status == RunStatus.RUNNING


def test_a_run_older_than_the_task_timeout_is_reaped(settings) -> None:
    settings.TASK_TIMEOUT_SECONDS = 600
    run = SyncRunFactory(
        status=RunStatus.RUNNING,
        started_at=timezone.now() - dt.timedelta(minutes=12),
        heartbeat_at=timezone.now(),
    )

    assert runs_reap_stale(sync=run.sync) == 1
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED


def test_a_queued_run_nobody_picked_up_is_failed_with_a_hint(settings) -> None:
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "retry": 1200}
    stuck = SyncRunFactory(status=RunStatus.QUEUED)
    SyncRun.objects.filter(pk=stuck.pk).update(created_at=timezone.now() - dt.timedelta(minutes=21))
    fresh = SyncRunFactory(status=RunStatus.QUEUED)

    result = reap_stale_runs()

    assert result == {"reaped_runs": 1}
    stuck.refresh_from_db()
    fresh.refresh_from_db()
    assert stuck.status == RunStatus.FAILED and "qcluster" in stuck.error_message
    assert fresh.status == RunStatus.QUEUED
