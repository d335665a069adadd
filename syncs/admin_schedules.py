"""django-q2's "Scheduled tasks" in words: which sync (or chore) each schedule runs and how
often, with a link to the sync, instead of only `cohortsync:sync:2`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.db.models import CharField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Cast, Concat
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django_q.admin import ScheduleAdmin
from django_q.models import Schedule

from alerts.schedules import RETRY_SCHEDULE_NAME, STALE_CHECK_SCHEDULE_NAME
from syncs.admin_display import interval_words
from syncs.models import Sync
from syncs.schedules import PRUNE_SCHEDULE_NAME, REAPER_SCHEDULE_NAME, SYNC_SCHEDULE_PREFIX

CHORES = {
    PRUNE_SCHEDULE_NAME: "Delete runs older than the retention period",
    REAPER_SCHEDULE_NAME: "Mark runs whose worker stopped as failed",
    STALE_CHECK_SCHEDULE_NAME: "Alerts: notice syncs that stopped running",
    RETRY_SCHEDULE_NAME: "Alerts: retry failed deliveries",
}


def schedule_interval_words(schedule_type: str, minutes: int | None) -> str:
    """How often a django-q2 schedule fires, in words: "every 15 minutes", "daily"."""
    if schedule_type == Schedule.MINUTES and minutes:
        return interval_words(minutes)
    return str(dict(Schedule.TYPE).get(schedule_type, schedule_type)).lower()


def schedule_purpose(schedule: Schedule, *, sync_url: Callable[[int], str] | None) -> str:
    """What the schedule runs: "Sync “Pro → SFMC”" (a link when `sync_url` is given), a
    chore of CohortSync, or the task's function."""
    sync_id = getattr(schedule, "sync_id", None)
    if sync_id is not None:
        name = getattr(schedule, "sync_name", "") or f"#{sync_id}"
        if sync_url is None:
            return format_html("Sync “{}”", name)
        return format_html('Sync “<a href="{}">{}</a>”', sync_url(sync_id), name)
    if schedule.name in CHORES:
        return CHORES[schedule.name]
    if (schedule.name or "").startswith(SYNC_SCHEDULE_PREFIX):
        return "A sync that no longer exists (setup_schedules removes it)"
    return schedule.func


class CohortSyncScheduleAdmin(ScheduleAdmin):
    def get_queryset(self, request: HttpRequest) -> QuerySet[Schedule]:
        by_name = Sync.objects.annotate(
            schedule_name=Concat(Value(SYNC_SCHEDULE_PREFIX), Cast("pk", CharField()), output_field=CharField())
        ).filter(schedule_name=OuterRef("name"))
        return super().get_queryset(request).annotate(
            sync_id=Subquery(by_name.values("pk")[:1]),
            sync_name=Subquery(by_name.values("name")[:1]),
        )

    def get_list_display(self, request: HttpRequest) -> tuple[Any, ...]:
        can_open = request.user.has_perm("syncs.view_sync")

        @admin.display(description="What it runs")
        def purpose(schedule: Schedule) -> str:
            return schedule_purpose(
                schedule,
                sync_url=(lambda pk: reverse("admin:syncs_sync_change", args=[pk])) if can_open else None,
            )

        @admin.display(description="How often", ordering="minutes")
        def how_often(schedule: Schedule) -> str:
            return schedule_interval_words(schedule.schedule_type, schedule.minutes)

        return ("name", purpose, how_often, "next_run", "get_last_run", "get_success")


admin.site.unregister(Schedule)
admin.site.register(Schedule, CohortSyncScheduleAdmin)
