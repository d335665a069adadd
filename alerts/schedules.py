"""The alerts' own schedules, created by `manage.py setup_schedules`."""

from __future__ import annotations

from django_q.models import Schedule

from syncs.schedules import schedule_upsert

STALE_CHECK_SCHEDULE_NAME = "cohortsync:alerts_stale_check"
STALE_CHECK_FUNC = "alerts.tasks.check_stale_syncs"
STALE_CHECK_INTERVAL_MINUTES = 5
RETRY_SCHEDULE_NAME = "cohortsync:alerts_retry"
RETRY_FUNC = "alerts.tasks.retry_alert_deliveries"
RETRY_INTERVAL_MINUTES = 1


def alert_schedules_ensure() -> list[str]:
    schedule_upsert(name=STALE_CHECK_SCHEDULE_NAME, func=STALE_CHECK_FUNC, schedule_type=Schedule.MINUTES,
                    minutes=STALE_CHECK_INTERVAL_MINUTES)
    schedule_upsert(name=RETRY_SCHEDULE_NAME, func=RETRY_FUNC, schedule_type=Schedule.MINUTES,
                    minutes=RETRY_INTERVAL_MINUTES)
    return [STALE_CHECK_SCHEDULE_NAME, RETRY_SCHEDULE_NAME]
