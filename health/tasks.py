"""django-q2 tasks of the health app: small, safe to run twice."""

from __future__ import annotations

from typing import Any

from health.services import cluster_heartbeat_record


def cluster_heartbeat() -> dict[str, Any]:
    return {"beat_at": cluster_heartbeat_record().isoformat()}
