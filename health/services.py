"""Write-side services of the health app."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from health.models import ClusterHeartbeat


def cluster_heartbeat_record(*, at: dt.datetime | None = None) -> dt.datetime:
    """Record that a task cluster is alive (the heartbeat schedule's task calls this)."""
    beat_at = at or timezone.now()
    pk = ClusterHeartbeat.SINGLETON_ID
    if not ClusterHeartbeat.objects.filter(pk=pk).update(beat_at=beat_at):
        # First beat: two clusters may get here at once; the second insert is ignored.
        ClusterHeartbeat.objects.bulk_create([ClusterHeartbeat(pk=pk, beat_at=beat_at)], ignore_conflicts=True)
        ClusterHeartbeat.objects.filter(pk=pk, beat_at__lt=beat_at).update(beat_at=beat_at)
    return beat_at
