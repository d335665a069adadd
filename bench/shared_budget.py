"""`manage.py bench --shared-budget`: two task clusters, two syncs to one Marketo instance.

Two `manage.py qcluster` processes (bench.fleet.task_cluster, each its own task queue, as
two hosts would run them) each run one first export of ~N members to the same Marketo
instance, through two destination records pointing at it, at the same time, drawing on its
budget in the database. The emulator
enforces Marketo's documented limits (100 calls / 20 s, 10 at once) and remembers when each
call it let through arrived. The figures: calls in the busiest 20-second window (target:
at most the budget), calls refused (target: none), and the share of the budget used in the
full 20-second windows while both exports ran (target: at least 85 %).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from django_q.models import Schedule

from bench.fleet import (
    LATENCY_JITTER,
    MARKETO_IDENTITY,
    MARKETO_LATENCY,
    MARKETO_LIMITS,
    cohort_property,
    marketo_field,
    profiles_copy,
    task_cluster,
)
from bench.report import console_verdict_lines, machine_text, results_append, verdict_lines
from bench.sandbox import HOST, SandboxProcess
from bench.suite import NAME_PREFIX, _child_env, bench_data_clear, machine_info
from cohorts.models import Cohort
from destinations.models import Destination
from syncs.models import RunStatus, Sync, SyncRun
from syncs.schedules import sync_schedule_name
from syncs.services import sync_schedule_update

DEFAULT_MEMBERS = 60_000
SYNCS = 2
WINDOW_SECONDS = 20.0
USE_TARGET = 0.85
TIMEOUT_SECONDS = 1800.0
FINISHED = (RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.SKIPPED)


@dataclass
class SharedBudgetResult:
    members: int
    command: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    calls: int = 0  # data calls the emulator let through (identity calls are not budgeted)
    identity_calls: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    busiest_window: int = 0
    full_windows: list[int] = field(default_factory=list)
    seconds: float = 0.0
    machine: dict[str, str] = field(default_factory=dict)

    @property
    def budget(self) -> int:
        return int(MARKETO_LIMITS["calls_per_20s"])

    @property
    def use(self) -> float:
        """The share of the budget used in the full 20-second windows of the busy span."""
        if not self.full_windows:
            return float("nan")
        return sum(self.full_windows) / (len(self.full_windows) * self.budget)


def window_figures(arrivals: list[float]) -> tuple[int, list[int]]:
    """(most calls in any 20-second window, the calls of each full 20-second window counted
    from the first call) for calls arriving at `arrivals` (seconds)."""
    arrivals = sorted(arrivals)
    busiest, j = 0, 0
    for i, first in enumerate(arrivals):
        while j < len(arrivals) and arrivals[j] < first + WINDOW_SECONDS:
            j += 1
        busiest = max(busiest, j - i)
    if not arrivals:
        return 0, []
    full = int((arrivals[-1] - arrivals[0]) // WINDOW_SECONDS)
    counts = [0] * full
    for at in arrivals:
        k = int((at - arrivals[0]) // WINDOW_SECONDS)
        if k < full:
            counts[k] += 1
    return busiest, counts


def _queue_name(pid: int) -> str:
    """The task queue (TASK_QUEUE_NAME) a cluster process was started with (Linux /proc)."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    for entry in environ:
        if entry.startswith(b"TASK_QUEUE_NAME="):
            return entry.split(b"=", 1)[1].decode()
    raise RuntimeError(f"The cluster process {pid} has no TASK_QUEUE_NAME.")


def _syncs_create(emulator: SandboxProcess) -> list[Sync]:
    options = {**MARKETO_LIMITS, "batch_size": 300, "bulk_threshold": 100_000_000}
    syncs = []
    for i in range(SYNCS):
        # Two records, one instance: they share its budget (the smaller of their options).
        destination = Destination.objects.create(
            name=f"{NAME_PREFIX}shared budget {i + 1}", kind="marketo", base_url=emulator.marketo_base_url,
            client_id="sandbox-client-id", client_secret="sandbox-client-secret", options=options,
        )
        cohort = Cohort.objects.create(
            name=f"{NAME_PREFIX}shared budget cohort {i + 1}", kind=Cohort.Kind.RULES,
            rules={"all": [{"property": cohort_property(i), "op": "eq", "value": True}]},
        )
        syncs.append(Sync.objects.create(
            name=f"{NAME_PREFIX}shared budget sync {i + 1}", cohort=cohort, destination=destination,
            target_field=marketo_field(i), identity_property="$email", mode=Sync.Mode.DYNAMIC,
            interval_minutes=60 * 24,
        ))
    return syncs


def shared_budget_run(
    *, members: int = DEFAULT_MEMBERS, command: str = "", out: Callable[[str], None] = print,
) -> SharedBudgetResult:
    result = SharedBudgetResult(members=members, command=command)
    call_command("migrate", verbosity=0)
    out(f"Cleaning earlier bench data in {connection.settings_dict.get('NAME')} ...")
    bench_data_clear()
    work = Path(settings.VAR_DIR) / "bench"
    with ExitStack() as stack:
        emulator = stack.enter_context(SandboxProcess(env=_child_env(None), log_path=work / "shared-budget-sandbox.log"))
        emulator.configure("marketo", {
            **MARKETO_LIMITS, "daily_quota": 10**9, "latency": MARKETO_LATENCY, "latency_jitter": LATENCY_JITTER,
            "fields": [{"name": marketo_field(i), "dataType": "boolean"} for i in range(SYNCS)],
        })
        profiles = math.ceil(members * 100 / 99)
        out(f"Seeding {profiles:,} profiles: two cohorts of ~{members:,} members ...")
        profiles_copy(count=profiles, cohorts=SYNCS)
        syncs = _syncs_create(emulator)
        for sync in syncs:
            sync_schedule_update(sync=sync)
        names = [sync_schedule_name(sync.pk) for sync in syncs]
        Schedule.objects.filter(name__in=names).update(next_run=timezone.now() + dt.timedelta(days=1))
        env = _child_env(None)
        # The budget in the database, which both clusters share (each cluster has a task queue
        # of its own, and a Redis budget's keys are prefixed with the queue's name).
        env["COHORTSYNC_API_BUDGET_STORE"] = "database"
        hosts = [h for h in env.get("COHORTSYNC_ALLOWED_API_HOSTS", "").split(",") if h.strip()]
        env["COHORTSYNC_ALLOWED_API_HOSTS"] = ",".join([*hosts, f"{HOST}:{emulator.port}"])
        out("Starting two qclusters (Q_WORKERS=1 each), one sync pinned to each ...")
        clusters = [
            stack.enter_context(task_cluster(env=env, workers=1, log_path=work / f"shared-budget-qcluster-{n + 1}.log"))
            for n in range(SYNCS)
        ]
        due_at = timezone.now()
        for sync, cluster in zip(syncs, clusters, strict=True):
            Schedule.objects.filter(name=sync_schedule_name(sync.pk)).update(
                cluster=_queue_name(cluster.pid), next_run=due_at)
        started = time.monotonic()
        while time.monotonic() - started < TIMEOUT_SECONDS:
            runs = list(SyncRun.objects.filter(sync__in=syncs, created_at__gte=due_at).order_by("pk"))
            if len([r for r in runs if r.status in FINISHED]) >= SYNCS:
                break
            time.sleep(1.0)
        result.seconds = time.monotonic() - started
        result.runs = [
            {"sync": run.sync_id, "status": run.status, "attempted": run.attempted_adds,
             "succeeded": run.succeeded_adds, "api_calls": run.api_calls,
             "seconds": (run.finished_at - run.started_at).total_seconds() if run.finished_at and run.started_at
             else float("nan")}
            for run in runs
        ]
        calls = emulator.calls("marketo")
        response = emulator._session.get(f"{emulator.url}/marketo/_sandbox/arrivals", timeout=60)
        response.raise_for_status()
        arrivals = [float(at) for at in response.json()["arrivals"]]
    result.identity_calls = int((calls.get("by_endpoint") or {}).get(MARKETO_IDENTITY, 0))
    result.calls = len(arrivals)
    result.refused = {code: int(n) for code, n in (calls.get("refused") or {}).items() if n}
    result.busiest_window, result.full_windows = window_figures(arrivals)
    result.machine = machine_info()
    return result


def targets(result: SharedBudgetResult) -> list[tuple[str, bool, str]]:
    done = [r for r in result.runs if r["status"] == RunStatus.SUCCEEDED]
    return [
        ("both syncs' exports succeed", len(done) == SYNCS,
         ", ".join(f"sync {r['sync']}: {r['status']}" for r in result.runs) or "no runs"),
        (f"combined calls in every 20-second window ≤ {result.budget}", result.busiest_window <= result.budget,
         f"busiest window: {result.busiest_window} calls"),
        ("0 calls refused", not result.refused,
         ", ".join(f"{n} × {code}" for code, n in sorted(result.refused.items())) or "0"),
        (f"≥ {USE_TARGET:.0%} of the budget used", result.use >= USE_TARGET,
         f"{result.use:.1%} over {len(result.full_windows)} full windows ({result.full_windows})"),
    ]


def _figures(result: SharedBudgetResult) -> list[str]:
    lines = [f"Shared budget: {SYNCS} syncs × ~{result.members:,} members, two qclusters, one Marketo "
             f"instance ({result.budget} calls / 20 s, {MARKETO_LIMITS['max_concurrency']} at once)"]
    for run in result.runs:
        lines.append(f"  sync {run['sync']}: {run['status']}, {run['succeeded']:,}/{run['attempted']:,} users, "
                     f"{run['api_calls']:,} API calls, {run['seconds']:.1f} s")
    lines.append(f"  {result.calls:,} budgeted calls (+{result.identity_calls} identity calls, not budgeted) in "
                 f"{result.seconds:.0f} s")
    return lines


def summary_text(result: SharedBudgetResult) -> str:
    lines = ["", *_figures(result), "", "Targets:"]
    lines += console_verdict_lines(targets(result))
    return "\n".join(lines)


def record(result: SharedBudgetResult, *, doc: Path) -> Path:
    """Append the result to docs/benchmarks.md, with the machine and the commit."""
    machine = result.machine
    when = timezone.now().strftime("%Y-%m-%d %H:%M UTC")
    block = [
        "", f"### {when}: shared budget, {SYNCS} syncs × ~{result.members:,} members, two qclusters", "",
        f"`{result.command}`. {machine_text(machine)}", "", "```", *_figures(result), "```",
        "", "Targets:", "",
    ]
    return results_append(block + verdict_lines(targets(result)), doc=doc)
