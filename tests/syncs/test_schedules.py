"""One django-q2 schedule per enabled dynamic sync, kept in step idempotently."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from syncs.models import Sync
from syncs.selectors import sync_next_run_at, sync_schedules_next_run
from syncs.services import sync_schedule_update, sync_set_enabled, sync_update
from tests.factories import DestinationFactory, SyncFactory

pytestmark = pytest.mark.django_db


def _schedules(sync: Sync) -> list[Schedule]:
    return list(Schedule.objects.filter(name=f"cohortsync:sync:{sync.pk}"))


def test_an_enabled_dynamic_sync_gets_exactly_one_schedule() -> None:
    sync = SyncFactory(destination=DestinationFactory(marketo=True))

    sync_schedule_update(sync=sync)
    sync_schedule_update(sync=sync)

    [schedule] = _schedules(sync)
    assert schedule.func == "syncs.tasks.run_scheduled_sync"
    assert schedule.schedule_type == Schedule.MINUTES
    assert schedule.minutes == 120  # Marketo's default interval
    assert schedule.repeats == -1
    assert schedule.args == f"({sync.pk},)"
    assert sync_next_run_at(sync) == schedule.next_run


def test_changing_the_interval_updates_the_schedule_without_delaying_it() -> None:
    sync = SyncFactory(interval_minutes=120)
    sync_schedule_update(sync=sync)
    before = _schedules(sync)[0].next_run

    sync_update(sync=sync, changes={"interval_minutes": 30})

    [schedule] = _schedules(sync)
    assert schedule.minutes == 30
    assert schedule.next_run <= before


def test_disabling_or_switching_to_one_time_removes_the_schedule() -> None:
    sync = SyncFactory()
    sync_schedule_update(sync=sync)

    sync_set_enabled(sync=sync, enabled=False)
    assert _schedules(sync) == []

    sync_set_enabled(sync=sync, enabled=True)
    assert len(_schedules(sync)) == 1

    sync_update(sync=sync, changes={"mode": Sync.Mode.ONE_TIME})
    assert _schedules(sync) == []


def test_deleting_a_sync_removes_its_schedule() -> None:
    sync = SyncFactory()
    sync_schedule_update(sync=sync)
    name = f"cohortsync:sync:{sync.pk}"

    sync.delete()

    assert not Schedule.objects.filter(name=name).exists()


def test_setup_schedules_twice_leaves_one_row_each_and_repairs_duplicates() -> None:
    dynamic = SyncFactory()
    one_time = SyncFactory(mode=Sync.Mode.ONE_TIME)
    Schedule.objects.create(name=f"cohortsync:sync:{dynamic.pk}", func="x", schedule_type=Schedule.ONCE)
    Schedule.objects.create(name=f"cohortsync:sync:{dynamic.pk}", func="x", schedule_type=Schedule.ONCE)
    Schedule.objects.create(name="cohortsync:sync:999999", func="syncs.tasks.run_scheduled_sync")

    call_command("setup_schedules", stdout=None)
    call_command("setup_schedules", stdout=None)

    assert len(_schedules(dynamic)) == 1 and _schedules(dynamic)[0].minutes == 15
    assert _schedules(one_time) == []
    assert not Schedule.objects.filter(name="cohortsync:sync:999999").exists()
    prune = Schedule.objects.get(name="cohortsync:prune_runs")
    assert (prune.func, prune.schedule_type) == ("syncs.tasks.prune_runs", Schedule.DAILY)
    reaper = Schedule.objects.get(name="cohortsync:reap_stale_runs")
    assert reaper.func == "syncs.tasks.reap_stale_runs"


def test_next_run_annotation_for_listings() -> None:
    scheduled = SyncFactory()
    unscheduled = SyncFactory(enabled=False)
    sync_schedule_update(sync=scheduled)

    rows = dict(Sync.objects.annotate(next_run_at=sync_schedules_next_run()).values_list("pk", "next_run_at"))

    assert rows[scheduled.pk] == _schedules(scheduled)[0].next_run
    assert rows[unscheduled.pk] is None
