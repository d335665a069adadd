"""django-q2 schedules of profile imports: one per enabled import with an interval.

Like syncs.schedules, every function converges the Schedule table to what the imports
say, whatever was there before, and nothing runs from AppConfig.ready().
"""

from __future__ import annotations

import datetime as dt

from django_q.models import Schedule

from sources.models import ProfileImport
from syncs.schedules import schedule_upsert

IMPORT_SCHEDULE_PREFIX = "cohortsync:import:"
IMPORT_SCHEDULE_FUNC = "sources.tasks.run_scheduled_import"


def import_schedule_name(import_id: int) -> str:
    return f"{IMPORT_SCHEDULE_PREFIX}{import_id}"


def import_schedule_update(*, profile_import: ProfileImport) -> None:
    """Exactly one schedule for an enabled import with every_minutes; none otherwise."""
    exists = profile_import.pk is not None and ProfileImport.objects.filter(pk=profile_import.pk).exists()
    if not exists or not profile_import.enabled or not profile_import.every_minutes:
        import_schedule_delete(import_id=profile_import.pk)
        return
    schedule_upsert(
        name=import_schedule_name(profile_import.pk),
        func=IMPORT_SCHEDULE_FUNC,
        args=repr((profile_import.pk,)),
        minutes=profile_import.every_minutes,
    )


def import_schedule_delete(*, import_id: int | None) -> int:
    if import_id is None:
        return 0
    deleted, _ = Schedule.objects.filter(name=import_schedule_name(import_id)).delete()
    return deleted


def import_schedules_converge() -> int:
    """Every import's schedule brought in line, and schedules of deleted imports removed;
    returns how many imports were checked."""
    ids: set[int] = set()
    for profile_import in ProfileImport.objects.iterator():
        import_schedule_update(profile_import=profile_import)
        ids.add(profile_import.pk)
    orphans = [
        schedule.pk
        for schedule in Schedule.objects.filter(name__startswith=IMPORT_SCHEDULE_PREFIX).only("name")
        if not schedule.name.removeprefix(IMPORT_SCHEDULE_PREFIX).isdigit()
        or int(schedule.name.removeprefix(IMPORT_SCHEDULE_PREFIX)) not in ids
    ]
    Schedule.objects.filter(pk__in=orphans).delete()
    return len(ids)


def import_last_slot(*, profile_import: ProfileImport, now: dt.datetime) -> dt.datetime | None:
    """When the import's schedule last came due (None: not scheduled). django-q2 moves
    next_run one interval on when it creates the task, so a slot that has fired is one
    interval before next_run."""
    if not profile_import.enabled or not profile_import.every_minutes:
        return None
    next_run = (
        Schedule.objects.filter(name=import_schedule_name(profile_import.pk))
        .values_list("next_run", flat=True)
        .first()
    )
    if next_run is None:
        return None
    if next_run <= now:
        return next_run
    return next_run - dt.timedelta(minutes=profile_import.every_minutes)
