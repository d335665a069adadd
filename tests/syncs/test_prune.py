"""Old runs and their failures are pruned; each sync's last run is always kept."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from syncs.models import RunStatus, SyncFailure, SyncRun
from syncs.services import sync_runs_prune
from tests.factories import SyncFactory, SyncFailureFactory, SyncRunFactory

pytestmark = pytest.mark.django_db


def _run(sync, days_ago: int, status: str = RunStatus.SUCCEEDED, **kwargs) -> SyncRun:  # type: ignore[no-untyped-def]
    run = SyncRunFactory(sync=sync, status=status, **kwargs)
    SyncRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - dt.timedelta(days=days_ago))
    return run


def test_prune_deletes_old_runs_and_failures_but_keeps_each_syncs_last_run(settings) -> None:
    settings.COHORTSYNC_RUN_RETENTION_DAYS = 30
    busy, quiet = SyncFactory(), SyncFactory()
    old = _run(busy, 40)
    SyncFailureFactory.create_batch(3, run=old)
    retry_of_old = _run(busy, 35, trigger=SyncRun.Trigger.RETRY, retry_of=old)
    recent = _run(busy, 2)
    quiet_last = _run(quiet, 90)
    SyncFailureFactory(run=quiet_last)

    assert sync_runs_prune() == 2

    assert set(SyncRun.objects.values_list("pk", flat=True)) == {recent.pk, quiet_last.pk}
    assert SyncFailure.objects.filter(run=quiet_last).count() == 1
    assert not SyncFailure.objects.filter(run_id=old.pk).exists()
    assert not SyncRun.objects.filter(pk=retry_of_old.pk).exists()


def test_prune_never_deletes_a_run_awaiting_approval() -> None:
    sync = SyncFactory()
    held = _run(sync, 60, status=RunStatus.AWAITING_APPROVAL)
    _run(sync, 50)
    _run(sync, 1)

    assert sync_runs_prune(older_than_days=30) == 1
    assert SyncRun.objects.filter(pk=held.pk).exists()


def test_prune_runs_command_takes_days() -> None:
    sync = SyncFactory()
    _run(sync, 10)
    _run(sync, 1)
    out = io.StringIO()

    call_command("prune_runs", "--days", "5", stdout=out)

    assert "Deleted 1 run(s) and 0 import run(s) older than 5 days." in out.getvalue()
    assert SyncRun.objects.count() == 1


def test_the_daily_prune_deletes_the_synced_state_a_deleted_sync_left_behind() -> None:
    from syncs.models import Sync, SyncedMember
    from syncs.tasks import prune_runs

    kept, deleted = SyncFactory(), SyncFactory()
    now = timezone.now()
    SyncedMember.objects.create(sync=kept, identity_value="kept@example.com", is_member=True, acknowledged_at=now)
    gone_id = deleted.pk
    Sync.objects.filter(pk=gone_id).delete()
    # A run still writing when its sync was deleted (there is no foreign key to refuse it).
    SyncedMember.objects.create(sync_id=gone_id, identity_value="left@example.com", is_member=True, acknowledged_at=now)

    result = prune_runs()

    assert result["deleted_orphan_state"] == 1
    assert list(SyncedMember.objects.values_list("identity_value", flat=True)) == ["kept@example.com"]
