"""What /healthz reports: the database, the task broker, and the task clusters' last sign of life.

The report is public (no login), so it carries no configuration: every message is a fixed
text. Exceptions, which may name hosts, go to the log only.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Max
from django.utils import timezone

from health.models import ClusterHeartbeat
from syncs.models import RunStatus, SyncRun

logger = logging.getLogger(__name__)

# A probe must answer quickly even when Redis does not: connecting and each command.
BROKER_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class Check:
    ok: bool
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **self.details}


@dataclass(frozen=True)
class HealthReport:
    checks: dict[str, Check]
    checked_at: dt.datetime

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks.values())

    @property
    def failing(self) -> list[str]:
        return [name for name, check in self.checks.items() if not check.ok]

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "unavailable",
            "failing": self.failing,
            "checked_at": self.checked_at.isoformat(),
            "checks": {name: check.as_dict() for name, check in self.checks.items()},
        }


def health_report(*, now: dt.datetime | None = None) -> HealthReport:
    now = now or timezone.now()
    database = database_check()
    checks = {
        "database": database,
        "broker": broker_check(now=now),
        "cluster": cluster_check(now=now) if database.ok else Check(
            False, {"error": "Unknown: the database, where task clusters report, is unreachable."}
        ),
    }
    return HealthReport(checks=checks, checked_at=now)


def _log_failure(what: str, exc: BaseException) -> None:
    logger.warning("Health check: %s failed: %s: %s", what, type(exc).__name__, exc)


def database_check() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        _log_failure("the database", exc)
        return Check(False, {"vendor": connection.vendor, "error": "The database is unreachable (details in the web log)."})
    return Check(True, {"vendor": connection.vendor})


def _queue_name() -> str:
    q_cluster = settings.Q_CLUSTER
    return str(q_cluster.get("cluster_name") or q_cluster.get("name") or "default")


def broker_check(*, now: dt.datetime) -> Check:
    """The broker the task clusters read: Redis (REDIS_URL) or the database (django-q2's ORM broker)."""
    q_cluster = settings.Q_CLUSTER
    if q_cluster.get("redis"):
        return _redis_broker_check(q_cluster["redis"])
    from django_q.models import OrmQ

    try:
        waiting = OrmQ.objects.using(q_cluster.get("orm") or "default").filter(
            key=_queue_name(), lock__lte=now
        ).count()
    except Exception as exc:
        _log_failure("the database broker", exc)
        return Check(False, {"kind": "database", "error": "The task queue table cannot be read (details in the web log)."})
    return Check(True, {"kind": "database", "queued_tasks": waiting})


def _redis_broker_check(config: str | dict[str, Any]) -> Check:
    import redis

    timeouts = {"socket_connect_timeout": BROKER_TIMEOUT_SECONDS, "socket_timeout": BROKER_TIMEOUT_SECONDS}
    try:
        client = redis.Redis.from_url(config, **timeouts) if isinstance(config, str) else redis.Redis(
            **{**config, **timeouts}
        )
        with client:
            client.ping()
            waiting = int(client.llen(f"django_q:{_queue_name()}:q"))
    except Exception as exc:
        _log_failure("the Redis broker", exc)
        return Check(False, {"kind": "redis", "error": "The Redis broker is unreachable (details in the web log)."})
    return Check(True, {"kind": "redis", "queued_tasks": waiting})


def cluster_check(*, now: dt.datetime) -> Check:
    """Alive when a cluster ran the heartbeat schedule, or a worker's run beat, recently enough.

    Any live cluster counts: the schedule fires once per minute on whichever cluster gets it.
    A cluster whose workers are all busy with long runs may run the heartbeat task late;
    those runs beat themselves (at least every 30 s), so a busy cluster is not reported dead.
    """
    max_age = int(settings.COHORTSYNC_HEALTH_MAX_HEARTBEAT_AGE_SECONDS)
    heartbeat = ClusterHeartbeat.objects.filter(pk=ClusterHeartbeat.SINGLETON_ID).values_list(
        "beat_at", flat=True
    ).first()
    run_beat = SyncRun.objects.filter(status=RunStatus.RUNNING).aggregate(last=Max("heartbeat_at"))["last"]
    details: dict[str, Any] = {
        "last_heartbeat_at": heartbeat.isoformat() if heartbeat else None,
        "last_run_heartbeat_at": run_beat.isoformat() if run_beat else None,
        "max_age_seconds": max_age,
    }
    signs = [at for at in (heartbeat, run_beat) if at is not None]
    if not signs:
        details["error"] = (
            "No task cluster has ever reported: start `manage.py qcluster`, and run `manage.py "
            "setup_schedules` once (it creates the heartbeat schedule)."
        )
        return Check(False, details)
    age = max(0.0, (now - max(signs)).total_seconds())
    details["age_seconds"] = round(age)
    if age > max_age:
        details["error"] = (
            f"No task cluster has shown a sign of life for {age:.0f} s (limit {max_age} s): check "
            "that `manage.py qcluster` runs on at least one host."
        )
        return Check(False, details)
    return Check(True, details)
