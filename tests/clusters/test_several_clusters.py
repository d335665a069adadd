"""Two task clusters on two "hosts" (own directory and environment, one PostgreSQL database,
one broker), on the database broker and on Redis.

Each test starts real `manage.py qcluster` processes against the sandbox emulators. django-q2's
scheduler runs about every 30 s in each cluster (hard-coded), which sets the pace: a test
makes its schedules due just before a scheduler pass instead of waiting for their interval.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import socket
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.clusters.harness import (
    ROOT,
    Host,
    Process,
    SharedDatabase,
    hosts,
    tasks_processed,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("broker", ["orm", "redis"])]

SANDBOX_SECRET = "sandbox-client-secret"
SCHEDULER_PERIOD = 30.0
SYNC_TASK = "syncs.tasks.run_scheduled_sync"
FINISHED = ("succeeded", "partial", "failed", "cancelled", "skipped")


def _profiles_csv(path: Path, count: int) -> Path:
    plans = ("pro", "team", "free")
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["distinct_id", "$email", "plan"])
        for i in range(count):
            writer.writerow([f"cl-{i:05d}", f"cl-{i:05d}@example.com", plans[i % len(plans)]])
    return path


def _destinations(sandbox_url: str, *, marketo_options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    secret = {"client_id": "sandbox-client-id", "client_secret": SANDBOX_SECRET}
    return [
        {"name": "SFMC DE", "kind": "sfmc_data_extension", "subdomain": "sandbox",
         "auth_base_url": f"{sandbox_url}/sfmc/auth", "data_extension_key": "CohortSync_Demo",
         "key_column": "SubscriberKey", **secret},
        {"name": "SFMC contacts", "kind": "sfmc_contacts", "subdomain": "sandbox",
         "auth_base_url": f"{sandbox_url}/sfmc/auth", "attribute_set": "Email Demographics", **secret},
        {"name": "Marketo", "kind": "marketo", "base_url": f"{sandbox_url}/marketo",
         "options": marketo_options or {}, **secret},
    ]


COHORTS = [
    {"name": "Pro", "rules": {"all": [{"property": "plan", "op": "eq", "value": "pro"}]}},
    {"name": "Team", "rules": {"all": [{"property": "plan", "op": "eq", "value": "team"}]}},
]


def _sync(name: str, cohort: str, destination: str, field: str, identity: str = "$email") -> dict[str, Any]:
    return {"name": name, "cohort": cohort, "destination": destination, "field": field,
            "identity_property": identity, "mode": "dynamic", "interval_minutes": 15}


def _set_up(host: Host, tmp_path: Path, *, profiles: int, configuration: dict[str, Any]) -> None:
    """What an operator does once, from any host: import, apply the configuration, schedules."""
    host.manage("import_profiles", str(_profiles_csv(tmp_path / "profiles.csv", profiles)))
    host.manage("apply", "-", stdin=json.dumps(configuration))
    host.manage("setup_schedules")


def _start_clusters(cluster_hosts: list[Host]) -> list[Process]:
    clusters = [host.start("qcluster") for host in cluster_hosts]
    wait_for(lambda: all(" running." in c.log() for c in clusters), timeout=60,
             what="every cluster to report it is running", hosts=cluster_hosts)
    return clusters


def _runs(database: SharedDatabase) -> list[dict[str, Any]]:
    columns = ["id", "sync", "destination_kind", "status", "trigger", "started_at", "finished_at",
               "planned_adds", "succeeded_adds", "error_code"]
    rows = database.rows(
        "SELECT r.id, s.name, d.kind, r.status, r.trigger, r.started_at, r.finished_at, r.planned_adds, "
        "r.succeeded_adds, r.error_code FROM syncs_syncrun r JOIN syncs_sync s ON s.id = r.sync_id "
        "JOIN destinations_destination d ON d.id = s.destination_id ORDER BY r.id"
    )
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _finished_runs(database: SharedDatabase, per_sync: int, syncs: int) -> bool:
    counts = Counter(run["sync"] for run in _runs(database) if run["status"] in FINISHED)
    return len(counts) == syncs and all(count >= per_sync for count in counts.values())


def _sync_schedules_due(database: SharedDatabase, *, at: str = "now()") -> None:
    database.execute(f"UPDATE django_q_schedule SET next_run = {at} WHERE name LIKE 'cohortsync:sync:%%'")


def _sync_tasks_processed(clusters: list[Process]) -> Counter[str]:
    return Counter(group for c in clusters for func, group in tasks_processed(c) if func == SYNC_TASK)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"]


def test_every_schedule_fires_once_per_slot_and_accounts_run_in_parallel(
    broker: str, shared_database: SharedDatabase, sandbox: Any, tmp_path: Path,
) -> None:
    # Each call takes 0.3 s, so a run lasts a few seconds and runs can be seen overlapping.
    # The Marketo instance allows one call at a time: the two Marketo syncs, on whichever
    # workers and hosts, share that budget (destinations.budget) and are never refused.
    marketo_budget = {"calls_per_20s": 20, "max_concurrency": 1}
    sandbox.sandboxes.marketo.configure(latency=0.3, **marketo_budget)
    sandbox.sandboxes.sfmc.configure(latency_seconds=0.3)
    sandbox.sandboxes.sfmc.add_attribute("Cohort_Team")
    configuration = {
        "destinations": _destinations(sandbox.url, marketo_options={"batch_size": 25, **marketo_budget}),
        "cohorts": COHORTS,
        "syncs": [
            _sync("Pro → DE", "Pro", "SFMC DE", "Pro_users", "$distinct_id"),
            _sync("Team → DE", "Team", "SFMC DE", "Team_users", "$distinct_id"),
            _sync("Pro → contacts", "Pro", "SFMC contacts", "Cohort_Demo"),
            _sync("Team → contacts", "Team", "SFMC contacts", "Cohort_Team"),
            _sync("Pro → Marketo", "Pro", "Marketo", "cohortProUsers"),
            _sync("Team → Marketo", "Team", "Marketo", "cohortRecentSignups"),
        ],
    }
    syncs = len(configuration["syncs"])
    with hosts(tmp_path, count=2, database=shared_database, broker=broker, sandbox_port=sandbox.port) as (one, two):
        # Every schedule, sync or housekeeping, is due at the clusters' first scheduler pass.
        _set_up(one, tmp_path, profiles=300, configuration=configuration)
        clusters = _start_clusters([one, two])
        started = time.monotonic()
        web = _web_start(one)

        wait_for(lambda: _finished_runs(shared_database, 1, syncs), timeout=120,
                 what="one finished run per sync", hosts=[one, two])
        # Both clusters' first passes are over (a double firing would happen in one of them).
        time.sleep(max(0.0, started + SCHEDULER_PERIOD + 3 - time.monotonic()))

        first = _runs(shared_database)
        assert [(r["status"], r["trigger"]) for r in first] == [("succeeded", "schedule")] * syncs, first
        assert len({r["sync"] for r in first}) == syncs
        assert sorted(_sync_tasks_processed(clusters).values()) == [1] * syncs
        # Both hosts took part: a cluster takes no more runs than its workers can start soon.
        assert all(_sync_tasks_processed([c]) for c in clusters)
        # Independent accounts (Marketo; the SFMC tenant) ran at the same time.
        marketo = [r for r in first if r["destination_kind"] == "marketo"]
        sfmc = [r for r in first if r["destination_kind"] != "marketo"]
        assert any(_overlap(m, s) for m in marketo for s in sfmc), first

        # A cluster really beats: the web process answers 200 from what the clusters wrote.
        health = _healthz(one, web)
        assert (health["http"], health["status"]) == (200, "ok"), health
        assert health["checks"]["broker"]["kind"] == ("redis" if broker == "redis" else "database")
        assert health["checks"]["cluster"]["last_heartbeat_at"] is not None

        # The next slot: due now, fired at the next pass of whichever cluster gets there first.
        _sync_schedules_due(shared_database)
        slot = time.monotonic()
        wait_for(lambda: _finished_runs(shared_database, 2, syncs), timeout=120,
                 what="a second finished run per sync", hosts=[one, two])
        time.sleep(max(0.0, slot + SCHEDULER_PERIOD + 3 - time.monotonic()))

        runs = _runs(shared_database)
        assert Counter(r["sync"] for r in runs) == {name: 2 for name in {r["sync"] for r in first}}, runs
        assert {r["status"] for r in runs} == {"succeeded"}, runs
        assert sorted(_sync_tasks_processed(clusters).values()) == [2] * syncs
        assert all(c.alive() for c in clusters)
        refused = sandbox.sandboxes.marketo.state()["calls"]["refused"]
        assert not {"606", "615"} & set(refused), refused


def _web_start(host: Host) -> str:
    """The documented web process (gunicorn with deploy/gunicorn.conf.py) on `host`; its URL."""
    port = _free_port()
    host.env.update(WEB_BIND=f"127.0.0.1:{port}", WEB_WORKERS="1")
    host.start_command([str(Path(sys.executable).with_name("gunicorn")), "-c", "deploy/gunicorn.conf.py"],
                       label="web", cwd=ROOT)
    return f"http://127.0.0.1:{port}"


def _healthz(host: Host, url: str) -> dict[str, Any]:
    def answer() -> dict[str, Any] | None:
        try:
            response = requests.get(f"{url}/healthz", timeout=30)
        except requests.ConnectionError:
            return None
        return {"http": response.status_code, **response.json()}

    return wait_for(answer, timeout=60, what="the web process to answer /healthz", hosts=[host])


def test_a_cluster_killed_mid_run_is_taken_over_by_the_other(
    broker: str, shared_database: SharedDatabase, sandbox: Any, tmp_path: Path,
) -> None:
    stale_seconds = 6.0
    # 200 members sent 10 per call, one call at a time, 0.4 s each: a run of about 8 s.
    sandbox.sandboxes.marketo.configure(latency=0.4)
    configuration = {
        "destinations": _destinations(sandbox.url, marketo_options={"batch_size": 10, "max_concurrency": 1}),
        "cohorts": COHORTS,
        "syncs": [_sync("Pro → Marketo", "Pro", "Marketo", "cohortProUsers")],
    }
    members = 200
    with hosts(tmp_path, count=2, database=shared_database, broker=broker, sandbox_port=sandbox.port,
               extra={"COHORTSYNC_STALE_RUN_MINUTES": str(stale_seconds / 60)}) as (one, two):
        _set_up(one, tmp_path, profiles=3 * members, configuration=configuration)
        clusters = _start_clusters([one, two])

        def acknowledged() -> int:
            return int(shared_database.value("SELECT count(*) FROM syncs_syncedmember WHERE is_member"))

        wait_for(lambda: acknowledged() >= 30, timeout=90, what="the run to acknowledge its first users",
                 hosts=[one, two], interval=0.1)
        [owner] = [c for c in clusters if any(func == SYNC_TASK for func, _ in tasks_processed(c))]
        [survivor] = [c for c in clusters if c is not owner]
        owner.kill()
        owner.popen.wait(timeout=10)
        time.sleep(1.0)  # anything the dead workers had in flight is gone with them
        acknowledged_at_kill = acknowledged()
        [dead] = _runs(shared_database)
        assert dead["status"] == "running" and 30 <= acknowledged_at_kill < members, dead

        # The schedule's next slot comes once the dead run's heartbeat is stale.
        _sync_schedules_due(shared_database, at=f"now() + interval '{stale_seconds + 1} seconds'")
        wait_for(lambda: len([r for r in _runs(shared_database) if r["status"] in FINISHED]) == 2,
                 timeout=SCHEDULER_PERIOD * 2 + 60, what="the surviving cluster's run", hosts=[one, two])

        reaped, resumed = _runs(shared_database)
        assert (reaped["id"], reaped["status"], reaped["error_code"]) == (dead["id"], "failed", "worker_lost")
        assert resumed["status"] == "succeeded" and resumed["trigger"] == "schedule", resumed
        # It sent only what the dead run had not had acknowledged.
        assert resumed["planned_adds"] == members - acknowledged_at_kill, (resumed, acknowledged_at_kill)
        assert resumed["succeeded_adds"] == members - acknowledged_at_kill
        assert acknowledged() == members
        leads = sandbox.sandboxes.marketo.state()["leads"]
        assert sum(1 for lead in leads if lead.get("cohortProUsers") is True) == members
        assert [func for func, _ in tasks_processed(survivor)].count(SYNC_TASK) == 1
        assert survivor.alive()
        assert dt.timedelta(0) < resumed["started_at"] - dead["started_at"]
