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
