"""Create or repair every CohortSync schedule: safe to run on every deploy."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from alerts.schedules import alert_schedules_ensure
from health.schedules import heartbeat_schedule_ensure
from sources.schedules import import_schedules_converge
from syncs.models import Sync
from syncs.schedules import housekeeping_schedules_ensure, orphan_sync_schedules_delete
from syncs.services import sync_schedule_update


class Command(BaseCommand):
    help = (
        "Create the daily run pruning, the stale-run reaper, the alert (stale check, retries) "
        "and the cluster heartbeat schedules, and bring every sync's and profile import's "
        "schedule in line with its settings. Idempotent."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        names = [*housekeeping_schedules_ensure(), *alert_schedules_ensure(), heartbeat_schedule_ensure()]
        ids: set[int] = set()
        for sync in Sync.objects.select_related("destination").iterator():
            sync_schedule_update(sync=sync)
            ids.add(sync.pk)
        orphans = orphan_sync_schedules_delete(existing_sync_ids=ids)
        imports = import_schedules_converge()
        self.stdout.write(
            f"Schedules ready: {', '.join(names)}; {len(ids)} sync(s) and {imports} profile import(s) checked"
            + (f"; {orphans} orphan schedule(s) removed." if orphans else ".")
        )
