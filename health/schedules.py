"""The heartbeat schedule: every minute, whichever cluster's scheduler gets it first."""

from __future__ import annotations

from django_q.models import Schedule

from syncs.schedules import schedule_upsert

HEARTBEAT_SCHEDULE_NAME = "cohortsync:cluster_heartbeat"
HEARTBEAT_SCHEDULE_FUNC = "health.tasks.cluster_heartbeat"
HEARTBEAT_INTERVAL_MINUTES = 1
# A success is not kept as a django-q2 Task row: 1,440 a day would push the sync runs'
# results out of `save_limit`. Failures are always kept.
HEARTBEAT_TASK_KWARGS = repr({"q_options": {"save": False}})


def heartbeat_schedule_ensure() -> str:
    schedule_upsert(
        name=HEARTBEAT_SCHEDULE_NAME,
        func=HEARTBEAT_SCHEDULE_FUNC,
        kwargs=HEARTBEAT_TASK_KWARGS,
        schedule_type=Schedule.MINUTES,
        minutes=HEARTBEAT_INTERVAL_MINUTES,
    )
    return HEARTBEAT_SCHEDULE_NAME
