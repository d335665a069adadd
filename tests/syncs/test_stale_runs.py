"""Issue 10 item 9: a killed worker's run no longer blocks its sync.

A run records the process that claimed it. When that process is gone (same machine, same
process namespace), the run is reaped at once by whatever asks for a new run of its sync
(run_sync, the admin, a schedule) and by the reaper; otherwise its heartbeat decides, after
COHORTSYNC_STALE_RUN_MINUTES, and the reaper runs every minute.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from syncs import workers
from syncs.models import RunStatus, SyncRun
from syncs.schedules import REAPER_SCHEDULE_NAME
from syncs.services import (
    runs_reap_stale,
    sync_run_create,
    sync_run_execute,
    sync_run_scheduled_fire,
)
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

needs_proc = pytest.mark.skipif(
    workers.worker_identity() == {}, reason="process liveness needs Linux's /proc"
)


@pytest.fixture
def dead_worker() -> dict[str, object]:
    """The identity of a worker process that was killed with SIGKILL."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        identity = workers.worker_identity(pid=process.pid)
    finally:
        process.kill()
        process.wait()
    return identity


def _killed_run(fake: FakeConnector, sync, worker: dict[str, object]) -> SyncRun:  # type: ignore[no-untyped-def]
    """A run that acknowledged its first batch, then lost its worker a moment ago."""
    fake.raise_on_push, fake.raise_on_push_call = WorkerKilled(), 2
    run = sync_run_create(sync=sync, trigger=SyncRun.Trigger.SCHEDULE)
    with pytest.raises(WorkerKilled):
        sync_run_execute(run_id=run.pk)
    fake.raise_on_push = None
    SyncRun.objects.filter(pk=run.pk).update(worker=worker, heartbeat_at=timezone.now())
    return run


def _request_with_run_sync(sync, client) -> SyncRun:  # type: ignore[no-untyped-def]
    out = io.StringIO()
    try:
        call_command("run_sync", sync.name, "--inline", "--json", stdout=out)
    except SystemExit as exit_:
        assert exit_.code == 0, out.getvalue()
    return SyncRun.objects.get(pk=json.loads(out.getvalue())["run_id"])


def _request_with_the_admin(sync, client) -> SyncRun:  # type: ignore[no-untyped-def]
    response = client.post(reverse("admin:syncs_sync_export_now", args=[sync.pk]))
    assert response.status_code == 302
    return SyncRun.objects.filter(sync=sync, trigger=SyncRun.Trigger.MANUAL).get()


def _request_with_the_schedule(sync, client) -> SyncRun:  # type: ignore[no-untyped-def]
    return sync_run_scheduled_fire(sync_id=sync.pk)


@needs_proc
@pytest.mark.parametrize(
    "request_run", [_request_with_run_sync, _request_with_the_admin, _request_with_the_schedule]
)
def test_a_run_whose_worker_was_killed_is_reaped_when_the_next_run_is_requested(
    fake: FakeConnector, dead_worker, admin_client, django_capture_on_commit_callbacks, request_run
) -> None:
    for n in range(6):
        pro_profile(f"user{n}@example.com")
    sync = SyncFactory()
    killed = _killed_run(fake, sync, dead_worker)
    fake.forget_pushes()

    with django_capture_on_commit_callbacks(execute=True):
        nxt = request_run(sync, admin_client)

    killed.refresh_from_db()
    nxt.refresh_from_db()
    assert killed.status == RunStatus.FAILED and killed.error_code == "worker_lost"
    assert f"pid {dead_worker['pid']}" in killed.error_message
    assert nxt.status == RunStatus.SUCCEEDED
    assert len(fake.pushed) == 4, "only the users the killed run had not acknowledged are sent"
    assert synced_state(sync) == {f"user{n}@example.com": True for n in range(6)}


@needs_proc
def test_the_reaper_reaps_a_killed_workers_run_without_waiting_for_its_heartbeat(dead_worker) -> None:
    run = SyncRunFactory(status=RunStatus.RUNNING, started_at=timezone.now(),
                         heartbeat_at=timezone.now(), worker=dead_worker)

    assert reap_stale_runs() == {"reaped_runs": 1}
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.error_code == "worker_lost"


def test_a_run_whose_worker_is_alive_keeps_running_until_its_heartbeat_is_stale(settings) -> None:
    settings.COHORTSYNC_STALE_RUN_MINUTES = 10
    run = SyncRunFactory(status=RunStatus.RUNNING, started_at=timezone.now(),
                         heartbeat_at=timezone.now() - dt.timedelta(minutes=9),
                         worker=workers.worker_identity())

    assert runs_reap_stale(sync=run.sync) == 0
    SyncRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - dt.timedelta(minutes=11))
    assert runs_reap_stale(sync=run.sync) == 1
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and run.error_message.startswith("The worker stopped")


@pytest.mark.parametrize(
    "elsewhere",
    [
        {"boot": "another-machine"},
        {"pid_namespace": "pid:[1]"},
    ],
    ids=["another machine", "another container"],
)
def test_a_worker_on_another_machine_or_container_is_judged_by_its_heartbeat_only(
    dead_worker, elsewhere
) -> None:
    worker = {**dead_worker, **elsewhere} if dead_worker else {"pid": 1, **elsewhere}
    run = SyncRunFactory(status=RunStatus.RUNNING, started_at=timezone.now(),
                         heartbeat_at=timezone.now(), worker=worker)

    assert runs_reap_stale(sync=run.sync) == 0
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


def test_a_run_claimed_before_workers_were_recorded_is_judged_by_its_heartbeat() -> None:
    run = SyncRunFactory(status=RunStatus.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now())

    assert runs_reap_stale(sync=run.sync) == 0


@needs_proc
def test_a_reused_pid_is_not_mistaken_for_the_worker(dead_worker) -> None:
    """Same pid, different start time: another process now, so the worker is gone."""
    me = workers.worker_identity()
    impostor = {**me, "started": int(me["started"]) + 1}

    assert workers.worker_is_gone(impostor) is True
    assert workers.worker_is_gone(me) is False
    assert workers.worker_is_gone(dead_worker) is True


def test_claiming_a_run_records_this_process() -> None:
    sync = SyncFactory()
    run = sync_run_create(sync=sync, trigger=SyncRun.Trigger.MANUAL)

    from syncs.engine.runner import run_claim

    assert run_claim(run_id=run.pk)
    run.refresh_from_db()
    assert run.worker == workers.worker_identity()
    if run.worker:
        assert run.worker["pid"] == os.getpid()


def test_the_reaper_runs_every_minute_even_on_an_existing_install() -> None:
    Schedule.objects.create(name=REAPER_SCHEDULE_NAME, func="syncs.tasks.reap_stale_runs",
                            schedule_type=Schedule.MINUTES, minutes=5)

    call_command("setup_schedules", stdout=io.StringIO())

    reaper = Schedule.objects.get(name=REAPER_SCHEDULE_NAME)
    assert reaper.minutes == 1
