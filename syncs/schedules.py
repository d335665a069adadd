"""django-q2 schedules owned by CohortSync: one per enabled dynamic sync, plus housekeeping.

Every function here is idempotent: it converges the Schedule table to what the syncs say,
whatever was there before (including duplicates, since django-q2 has no unique constraint
on Schedule.name). Nothing runs from AppConfig.ready(): schedules are written by the sync
services when a sync changes, and by `manage.py setup_schedules`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone
from django_q.models import Schedule

SYNC_SCHEDULE_PREFIX = "cohortsync:sync:"
SYNC_SCHEDULE_FUNC = "syncs.tasks.run_scheduled_sync"
PRUNE_SCHEDULE_NAME = "cohortsync:prune_runs"
PRUNE_SCHEDULE_FUNC = "syncs.tasks.prune_runs"
REAPER_SCHEDULE_NAME = "cohortsync:reap_stale_runs"
REAPER_SCHEDULE_FUNC = "syncs.tasks.reap_stale_runs"
REAPER_INTERVAL_MINUTES = 5


def sync_schedule_name(sync_id: int) -> str:
    return f"{SYNC_SCHEDULE_PREFIX}{sync_id}"


def schedule_delete_for_sync(*, sync_id: int | None) -> int:
    if sync_id is None:
        return 0
    deleted, _ = Schedule.objects.filter(name=sync_schedule_name(sync_id)).delete()
    return deleted


def schedule_upsert(
    *,
    name: str,
    func: str,
    args: str = "",
    kwargs: str = "",
    schedule_type: str = Schedule.MINUTES,
    minutes: int | None = None,
    first_run_at: dt.datetime | None = None,
) -> Schedule:
    """Exactly one Schedule called `name` with these settings, keeping its next_run.

    Only a changed interval moves next_run, and only earlier: shortening 120 minutes to 15
    should not wait for the old slot, lengthening it should not fire at once.
    """
    with transaction.atomic():
        existing = list(Schedule.objects.select_for_update().filter(name=name).order_by("pk"))
        for duplicate in existing[1:]:
            duplicate.delete()
        values: dict[str, Any] = {
            "func": func,
            "args": args,
            "kwargs": kwargs,
            "schedule_type": schedule_type,
            "minutes": minutes,
            "repeats": -1,
        }
        if not existing:
            return Schedule.objects.create(
                name=name, next_run=first_run_at or timezone.now(), **values
            )
        schedule = existing[0]
        changed = [key for key, value in values.items() if getattr(schedule, key) != value]
        if "minutes" in changed and minutes and schedule.next_run:
            schedule.next_run = min(schedule.next_run, timezone.now() + dt.timedelta(minutes=minutes))
            changed.append("next_run")
        if changed:
            for key in changed:
                if key in values:
                    setattr(schedule, key, values[key])
            schedule.save(update_fields=changed)
        return schedule


def housekeeping_schedules_ensure() -> list[str]:
    """The daily prune and the stale-run reaper; returns their names."""
    tomorrow_3am = (timezone.now() + dt.timedelta(days=1)).replace(
        hour=3, minute=0, second=0, microsecond=0
    )
    schedule_upsert(
        name=PRUNE_SCHEDULE_NAME,
        func=PRUNE_SCHEDULE_FUNC,
        schedule_type=Schedule.DAILY,
        first_run_at=tomorrow_3am,
    )
    schedule_upsert(
        name=REAPER_SCHEDULE_NAME,
        func=REAPER_SCHEDULE_FUNC,
        schedule_type=Schedule.MINUTES,
        minutes=REAPER_INTERVAL_MINUTES,
    )
    return [PRUNE_SCHEDULE_NAME, REAPER_SCHEDULE_NAME]


def orphan_sync_schedules_delete(*, existing_sync_ids: set[int]) -> int:
    """Sync schedules whose sync no longer exists (deleted with a raw query, say)."""
    orphans = [
        schedule.pk
        for schedule in Schedule.objects.filter(name__startswith=SYNC_SCHEDULE_PREFIX).only("name")
        if not schedule.name.removeprefix(SYNC_SCHEDULE_PREFIX).isdigit()
        or int(schedule.name.removeprefix(SYNC_SCHEDULE_PREFIX)) not in existing_sync_ids
    ]
    deleted, _ = Schedule.objects.filter(pk__in=orphans).delete()
    return deleted
