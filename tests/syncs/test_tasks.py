"""Tasks take ids, return small dicts, and are safe to run twice."""

from __future__ import annotations

import pytest
from django_q.models import Schedule

from syncs.models import RunStatus, Sync, SyncRun
from syncs.services import sync_run_create, sync_schedule_update
from syncs.tasks import execute_sync_run, prune_runs, run_scheduled_sync
from tests.factories import SyncFactory, SyncRunFactory
from tests.syncs.fakes import (  # noqa: F401
    FakeConnector,
    fake_connector_fixture,
    pro_profile,
    run_now,
    set_plan,
    synced_state,
)

pytestmark = pytest.mark.django_db


def test_execute_task_twice_sends_once(fake: FakeConnector) -> None:
    pro_profile("ana@example.com")
    run = sync_run_create(sync=SyncFactory(), trigger=SyncRun.Trigger.MANUAL)

    assert execute_sync_run(run.pk) == {"run_id": run.pk, "status": RunStatus.SUCCEEDED}
    assert execute_sync_run(run.pk) == {"run_id": run.pk, "status": RunStatus.SUCCEEDED}
    assert len(fake.pushes) == 1


def test_scheduled_fire_runs_the_sync(fake: FakeConnector) -> None:
    pro_profile("ana@example.com")
    sync = SyncFactory()

    result = run_scheduled_sync(sync.pk)

    run = SyncRun.objects.get(sync=sync)
    assert result == {"sync_id": sync.pk, "run_id": run.pk, "status": RunStatus.SUCCEEDED}
    assert run.trigger == SyncRun.Trigger.SCHEDULE
    assert synced_state(sync) == {"ana@example.com": True}


def test_a_fire_during_an_active_run_records_a_skipped_run(fake: FakeConnector) -> None:
    sync = SyncFactory()
    active = SyncRunFactory(sync=sync, status=RunStatus.RUNNING)
    from django.utils import timezone

    SyncRun.objects.filter(pk=active.pk).update(started_at=timezone.now(), heartbeat_at=timezone.now())

    result = run_scheduled_sync(sync.pk)

    skipped = SyncRun.objects.get(pk=result["run_id"])
    assert skipped.status == RunStatus.SKIPPED
    assert f"#{active.pk}" in skipped.error_message and "still running" in skipped.error_message
    assert fake.pushes == [] and fake.validations == []
    active.refresh_from_db()
    assert active.status == RunStatus.RUNNING


def test_fires_while_a_run_awaits_approval_do_not_pile_up(fake: FakeConnector) -> None:
    profiles = [pro_profile(f"user{n}@example.com") for n in range(2)]
    sync = SyncFactory()
    run_now(sync)
    for profile in profiles:
        set_plan(profile, "free")
    held = run_now(sync)
    assert held.status == RunStatus.AWAITING_APPROVAL

    results = [run_scheduled_sync(sync.pk), run_scheduled_sync(sync.pk)]

    # No skipped row per tick buries the waiting run: the ticks are counted on it.
    statuses = list(SyncRun.objects.filter(sync=sync).exclude(pk=held.pk).values_list("status", flat=True))
    assert statuses == [RunStatus.SUCCEEDED]
    assert results == [{"sync_id": sync.pk, "run_id": held.pk, "status": RunStatus.AWAITING_APPROVAL}] * 2
    held.refresh_from_db()
    assert (held.status, held.skipped_ticks) == (RunStatus.AWAITING_APPROVAL, 2)


def test_a_fire_for_a_disabled_or_deleted_sync_cleans_up_its_schedule(fake: FakeConnector) -> None:
    sync = SyncFactory()
    sync_schedule_update(sync=sync)
    Sync.objects.filter(pk=sync.pk).update(enabled=False)

    assert run_scheduled_sync(sync.pk)["status"] == "not_scheduled"
    assert not Schedule.objects.filter(name=f"cohortsync:sync:{sync.pk}").exists()
    assert run_scheduled_sync(987654)["status"] == "not_scheduled"
    assert SyncRun.objects.count() == 0


def test_prune_task_returns_a_count() -> None:
    assert prune_runs() == {"deleted_runs": 0, "deleted_orphan_state": 0, "deleted_import_runs": 0}


def test_execute_task_for_a_deleted_run_is_a_no_op() -> None:
    assert execute_sync_run(424242) == {"run_id": 424242, "status": "missing"}
