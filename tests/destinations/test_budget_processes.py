"""Two real processes, each with its own threads, drawing on one Marketo instance's budget
through the database (pytest's kind: a SQLite file, or a PostgreSQL database of its own)
and through Redis: the sandbox refuses nothing (no 606, no 615) and no 20-second window
holds more calls than the budget, although either process alone would have sent all of its
calls at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cryptography.fernet import Fernet

from tests.clusters.harness import database_create, database_drop, database_url

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/0"
CALLS_PER_20S = 10
CONCURRENCY = 2
CALLS_PER_PROCESS = 8
WINDOW = 20.0


@pytest.fixture(params=["database", "redis"])
def environment(request, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of two hosts sharing one budget store."""
    queue = f"cs-budget-{uuid.uuid4().hex[:12]}"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1", "DEBUG": "false", "SECRET_KEY": f"budget-{uuid.uuid4().hex}{uuid.uuid4().hex}",
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(), "COHORTSYNC_VAR_DIR": str(tmp_path / "var"),
        "COHORTSYNC_ALLOWED_API_HOSTS": "127.0.0.1", "TASK_QUEUE_NAME": queue,
        "COHORTSYNC_API_BUDGET_STORE": request.param,
    }
    postgres = os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))
    database = f"cs_budget_{uuid.uuid4().hex[:10]}"
    if postgres:
        database_create(database)
        env["DATABASE_URL"] = database_url(database)
    else:
        env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    if request.param == "redis":
        env["REDIS_URL"] = REDIS_URL
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v0"], cwd=ROOT, env=env,
                       check=True, capture_output=True, timeout=180)
        yield env
    finally:
        if postgres:
            database_drop(database)
        if request.param == "redis":
            with redis.Redis.from_url(REDIS_URL) as client:
                keys = list(client.scan_iter(f"{queue}:*"))
                if keys:
                    client.delete(*keys)


def test_two_processes_share_one_marketo_budget(sandbox, environment: dict[str, str]) -> None:
    marketo = sandbox.sandboxes.marketo
    # The instance allows exactly the budget; each call takes a while, so calls overlap.
    marketo.configure(calls_per_20s=CALLS_PER_20S, max_concurrency=CONCURRENCY, latency=0.3)
    start_at = time.time() + 4.0
    argv = [sys.executable, "-m", "tests.destinations.budget_worker", "--base-url", sandbox.marketo_base_url,
            "--calls", str(CALLS_PER_PROCESS), "--threads", "3", "--calls-per-20s", str(CALLS_PER_20S),
            "--max-concurrency", str(CONCURRENCY), "--start-at", str(start_at)]
    workers = [subprocess.Popen(argv, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True) for _ in range(2)]
    reports = []
    for worker in workers:
        out, err = worker.communicate(timeout=180)
        assert worker.returncode == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))

    assert [r["store"] for r in reports] == [environment["COHORTSYNC_API_BUDGET_STORE"]] * 2
    assert [r["errors"] for r in reports] == [[], []]
    calls = marketo.state()["calls"]
    assert calls["refused"] == {}  # no 606, no 615
    assert calls["by_endpoint"]["GET /rest/v1/leads/describe.json"] == 2 * CALLS_PER_PROCESS
    arrivals = sorted(marketo.accepted_arrivals())
    assert len(arrivals) == 2 * CALLS_PER_PROCESS
    for i, first in enumerate(arrivals):
        in_window = sum(1 for other in arrivals[i:] if other < first + WINDOW)
        assert in_window <= CALLS_PER_20S, f"{in_window} calls within 20 s of the call at {first - arrivals[0]:.2f} s"
    # Together they needed a second window: each process waited for the other's calls.
    assert arrivals[-1] - arrivals[0] >= WINDOW


def _manage(environment: dict[str, str], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=environment, input=stdin,
                          capture_output=True, text=True, timeout=180)


def _run_sync(environment: dict[str, str]) -> dict:
    result = _manage(environment, "run_sync", "Quota sync", "--inline", "--json")
    assert result.stdout.strip(), result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_a_run_in_another_process_stops_at_the_daily_quota_and_resumes_the_next_day(
    sandbox, environment: dict[str, str], tmp_path: Path
) -> None:
    """The production path: `run_sync` in a process of its own, its send loop's threads
    drawing on the store, and the store's day rewritten as midnight in Chicago would."""
    marketo = sandbox.sandboxes.marketo
    marketo.configure(daily_quota=6)  # one more than the budget: a 607 would mean it let one through
    leads = [f"quota{n:02d}@example.com" for n in range(10)]
    profiles = tmp_path / "profiles.csv"
    profiles.write_text("distinct_id,$email,plan\n" + "".join(f"q{n},{email},pro\n" for n, email in enumerate(leads)))
    configuration = {
        "destinations": [{"name": "Marketo", "kind": "marketo", "base_url": sandbox.marketo_base_url,
                          "client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret",
                          "options": {"batch_size": 2, "max_concurrency": 1, "daily_call_quota": 5}}],
        "cohorts": [{"name": "Pro", "rules": {"all": [{"property": "plan", "op": "eq", "value": "pro"}]}}],
        "syncs": [{"name": "Quota sync", "cohort": "Pro", "destination": "Marketo", "field": "cohortProUsers"}],
    }
    for args, stdin in ((("import_profiles", str(profiles)), None), (("apply", "-"), json.dumps(configuration))):
        done = _manage(environment, *args, stdin=stdin)
        assert done.returncode == 0, done.stderr[-3000:]

    stopped = _run_sync(environment)

    assert (stopped["status"], stopped["error_code"]) == ("partial", "quota_exhausted"), stopped
    assert "daily_call_quota" in stopped["error"] and "America/Chicago" in stopped["error"]
    calls = marketo.state()["calls"]
    assert calls["daily_used"] == 5 and calls["refused"] == {}
    # The field check took one call; four wrote two leads each.
    assert stopped["added"] == 8

    # Midnight in Chicago: Marketo's count starts again, and so does the budget's.
    marketo.configure(daily_quota=50_000)
    _day_rewrite(environment, "2000-01-01")

    resumed = _run_sync(environment)

    assert (resumed["status"], resumed["added"]) == ("succeeded", 2), resumed
    assert all(marketo.lead(email)["cohortProUsers"] is True for email in leads)
    calls = marketo.state()["calls"]
    assert calls["by_endpoint"]["POST /rest/v1/leads.json"] == 5 and calls["refused"] == {}


def _day_rewrite(environment: dict[str, str], day: str) -> None:
    """Move the store's quota day back, as if the calls had been counted yesterday."""
    store = environment["COHORTSYNC_API_BUDGET_STORE"]
    if store == "database":
        code = f"from destinations.models import ApiBudget; print(ApiBudget.objects.update(day={day!r}))"
    else:  # the day's count is a key of its own per day: delete today's
        code = ("from destinations.budget import budget_store; s = budget_store(); "
                "print(sum(s._redis.delete(k) for k in s._redis.scan_iter(f'{s.prefix}:day:*')))")
    done = _manage(environment, "shell", "-c", code)
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == "1", (done.stdout, done.stderr[-2000:])
