"""/healthz: open to load balancers, 200 when everything a sync needs is alive, else 503 naming it."""

from __future__ import annotations

import datetime as dt
import socket
import uuid

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone
from django_q.models import OrmQ, Schedule
from django_q.scheduler import scheduler

from health.models import ClusterHeartbeat
from health.schedules import HEARTBEAT_SCHEDULE_NAME
from health.services import cluster_heartbeat_record
from health.tasks import cluster_heartbeat
from syncs.models import RunStatus
from tests.factories import SyncRunFactory

pytestmark = pytest.mark.django_db

MAX_AGE = settings.COHORTSYNC_HEALTH_MAX_HEARTBEAT_AGE_SECONDS


def _get(client: Client | None = None):  # type: ignore[no-untyped-def]
    return (client or Client()).get("/healthz")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_all_alive_answers_200_without_login() -> None:
    cluster_heartbeat()

    response = _get()

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    body = response.json()
    assert body["status"] == "ok" and body["failing"] == []
    assert {name: check["ok"] for name, check in body["checks"].items()} == {
        "database": True, "broker": True, "cluster": True,
    }
    assert body["checks"]["broker"] == {"ok": True, "kind": "database", "queued_tasks": 0}
    assert body["checks"]["cluster"]["age_seconds"] <= 1
    assert body["checks"]["cluster"]["max_age_seconds"] == MAX_AGE


def test_an_old_heartbeat_answers_503_naming_the_cluster() -> None:
    cluster_heartbeat_record(at=timezone.now() - dt.timedelta(seconds=MAX_AGE + 60))

    response = _get()

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable" and body["failing"] == ["cluster"]
    cluster = body["checks"]["cluster"]
    assert cluster["ok"] is False and cluster["age_seconds"] >= MAX_AGE + 60
    assert "qcluster" in cluster["error"]
    assert body["checks"]["database"]["ok"] and body["checks"]["broker"]["ok"]


def test_no_heartbeat_ever_says_how_to_start_one() -> None:
    body = _get().json()

    assert body["failing"] == ["cluster"]
    assert "setup_schedules" in body["checks"]["cluster"]["error"]


def test_a_cluster_busy_with_a_long_run_is_alive_through_the_run_heartbeat() -> None:
    # The heartbeat task waits behind runs that take longer than the limit on every worker...
    cluster_heartbeat_record(at=timezone.now() - dt.timedelta(seconds=MAX_AGE + 600))
    run = SyncRunFactory(status=RunStatus.RUNNING, started_at=timezone.now() - dt.timedelta(hours=1),
                         heartbeat_at=timezone.now() - dt.timedelta(seconds=20))

    assert _get().status_code == 200

    # ...but a run whose worker stopped beating is no sign of life.
    run.heartbeat_at = timezone.now() - dt.timedelta(seconds=MAX_AGE + 1)
    run.save(update_fields=["heartbeat_at"])
    assert _get().json()["failing"] == ["cluster"]


def test_an_unreachable_redis_broker_answers_503_without_revealing_its_address(caplog) -> None:
    cluster_heartbeat()
    port = _closed_port()
    url = f"redis://:s3cret-password@127.0.0.1:{port}/0"

    with override_settings(Q_CLUSTER={**settings.Q_CLUSTER, "redis": url}):
        response = _get()

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["broker"]
    assert body["checks"]["broker"]["kind"] == "redis" and "unreachable" in body["checks"]["broker"]["error"]
    text = response.content.decode()
    assert "s3cret" not in text and str(port) not in text and "127.0.0.1" not in text
    assert "s3cret" not in caplog.text


def test_a_reachable_redis_broker_reports_its_queue() -> None:
    """Redis runs on this machine and in CI (.ci/run starts it when it is not running)."""
    cluster_heartbeat()
    name = f"cs-test-{uuid.uuid4().hex[:12]}"
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/0")
    key = f"django_q:{name}:q"
    client.rpush(key, "a", "b")
    try:
        with override_settings(Q_CLUSTER={**settings.Q_CLUSTER, "name": name, "redis": "redis://127.0.0.1:6379/0"}):
            response = _get()
    finally:
        client.delete(key)
        client.close()

    assert response.status_code == 200
    assert response.json()["checks"]["broker"] == {"ok": True, "kind": "redis", "queued_tasks": 2}


def test_an_unreachable_database_answers_503_without_its_address(monkeypatch) -> None:
    from django.db import OperationalError

    cluster_heartbeat()

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OperationalError('connection to server at "db.internal" (10.1.2.3), port 5432 failed')

    monkeypatch.setattr(connection, "cursor", refuse)
    monkeypatch.setattr(OrmQ.objects, "using", refuse)

    response = _get()

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["database", "broker", "cluster"]
    assert "db.internal" not in response.content.decode() and "10.1.2.3" not in response.content.decode()


def test_the_report_shows_no_configuration() -> None:
    cluster_heartbeat()
    text = _get().content.decode()

    db = settings.DATABASES["default"]
    for value in (settings.SECRET_KEY, *settings.FIELD_ENCRYPTION_KEYS, str(db.get("PASSWORD") or "x" * 40),
                  str(db.get("HOST") or "x" * 40), str(db["NAME"])):
        assert value not in text


def test_only_safe_methods_are_allowed() -> None:
    assert Client().post("/healthz").status_code == 405
    assert Client().head("/healthz").status_code in (200, 503)


def test_the_heartbeat_schedule_fired_by_the_scheduler_records_a_beat() -> None:
    """setup_schedules creates it; the django-q2 scheduler (synchronous in tests) runs it."""
    call_command("setup_schedules", stdout=None)
    call_command("setup_schedules", stdout=None)
    [schedule] = Schedule.objects.filter(name=HEARTBEAT_SCHEDULE_NAME)
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "health.tasks.cluster_heartbeat", Schedule.MINUTES, 1)
    Schedule.objects.filter(pk=schedule.pk).update(next_run=timezone.now() - dt.timedelta(seconds=1))
    assert not ClusterHeartbeat.objects.exists()

    scheduler()

    beat = ClusterHeartbeat.objects.get()
    assert (timezone.now() - beat.beat_at).total_seconds() < 5
    schedule.refresh_from_db()
    assert schedule.next_run > timezone.now()
    assert _get().status_code == 200
