from __future__ import annotations

from django.db import models


class ClusterHeartbeat(models.Model):
    """When a task cluster last ran the heartbeat schedule: one row, rewritten every minute.

    A worker writes it, so it proves the whole chain a sync depends on: a cluster's
    scheduler fired the schedule, the broker delivered the task and a worker ran it.
    """

    SINGLETON_ID = 1

    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"task cluster heartbeat at {self.beat_at:%Y-%m-%d %H:%M:%S}"
