"""`manage.py bench --fleet N`: a fleet of dynamic syncs, run by the real task cluster.

N dynamic syncs (default 60, Mixpanel's cap per project), each over a cohort of ~100,000
members, spread evenly over the three destination kinds and over the accounts of
EMULATORS emulator processes (each one Marketo instance and one SFMC tenant). Before every
cycle 1 % of each cohort changes (0.5 % leave, 0.5 % join); then every sync's schedule is
made due at once and one `manage.py qcluster` with `Q_WORKERS` workers (production
settings otherwise) runs them. A cycle lasts from its first run's start to its last run's
end.

First exports are not part of a cycle (`manage.py bench` measures them per path): the
synced state is seeded as if every sync had exported its cohort once.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from django_q.models import Schedule

from bench import data
from bench.paths import best_seconds
from bench.report import console_verdict_lines, machine_text, results_append, verdict_lines
from bench.sandbox import HOST, MANAGE, SandboxProcess
from bench.suite import NAME_PREFIX, WRITE_ENDPOINTS, _child_env, bench_data_clear, machine_info
from cohorts.models import Cohort, Profile
from cohorts.selectors import cohort_members
from cohortsync_site.database import statistics_refresh
from destinations.models import ApiBudget, Destination
from syncs.models import DISTINCT_ID_IDENTITY, RunStatus, Sync, SyncedMember, SyncRun
from syncs.schedules import sync_schedule_name
from syncs.services import sync_schedule_update

DEFAULT_SYNCS = 60
DEFAULT_MEMBERS = 100_000
DEFAULT_CYCLES = 2
DEFAULT_WORKERS = 2
CHURN_SHARE = 0.01
CYCLE_TARGET_SECONDS = 120.0
CYCLE_TIMEOUT_SECONDS = 1800.0
EMULATORS = 2
KINDS = ("marketo", "sfmc_data_extension", "sfmc_contacts")
FINISHED = (RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED, RunStatus.CANCELLED,
            RunStatus.SKIPPED, RunStatus.AWAITING_APPROVAL)

# One account's budget, both what the emulator enforces and what the destination's options
# say (as in bench/paths.py). Marketo: its documented 100 calls / 20 s and 10 concurrent
# calls. SFMC publishes no limit; 120 requests/s (the bench's rowset path) with 8 at once.
MARKETO_LIMITS = {"calls_per_20s": 100, "max_concurrency": 10}
MARKETO_LATENCY = 0.1
SFMC_LIMITS = {"requests_per_second": 120, "max_concurrency": 8}
SFMC_LATENCY = 0.025
LATENCY_JITTER = 0.5
MARKETO_IDENTITY = "POST /identity/oauth/token"


def member(profile: int, cohort: int) -> bool:
    """99 % of the profiles are members of each cohort, a different 1 % left out of each."""
    return (profile + 7 * cohort) % 100 != 99


def cohort_property(cohort: int) -> str:
    return f"fleet_{cohort:03d}"


def marketo_field(index: int) -> str:
    return f"fleetCohort{index:03d}"


def sfmc_field(index: int) -> str:
    return f"Fleet_{index:03d}"


@dataclass(frozen=True)
class Account:
    emulator: int
    api: str  # "marketo" or "sfmc": the emulator prefix

    @property
    def label(self) -> str:
        return f"{'Marketo instance' if self.api == 'marketo' else 'SFMC tenant'} {self.emulator + 1}"


def account_of(kind: str, emulator: int) -> Account:
    return Account(emulator, "marketo" if kind == "marketo" else "sfmc")


@dataclass
class AccountCycle:
    account: Account
    syncs: int
    calls: int  # every call the emulator answered, refusals included
    budget_calls: int  # the calls its budget counts (Marketo's token calls do not)
    writes: int
    refused: dict[str, int]
    run_api_calls: int
    bound_seconds: float


@dataclass
class CycleResult:
    number: int
    syncs: int
    due_at: Any
    runs_by_status: dict[str, int]
    finished: int
    wall_seconds: float
    lag_seconds: float
    run_seconds: list[float]
    changes: int
    failed_users: int
    cluster_cpu_seconds: float
    database_active_seconds: float
    database_transactions: int
    accounts: list[AccountCycle] = field(default_factory=list)


@dataclass
class FleetResult:
    syncs: int
    members: int
    workers: int
    command: str
    setup_seconds: float = 0.0
    cycles: list[CycleResult] = field(default_factory=list)
    machine: dict[str, str] = field(default_factory=dict)


# --- data ---------------------------------------------------------------------------------


def profiles_copy(*, count: int, cohorts: int) -> None:
    table = connection.ops.quote_name(Profile._meta.db_table)
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {table} (distinct_id, properties, created_at, updated_at) FROM STDIN") as copy:
            for i in range(count):
                props: dict[str, Any] = {"$email": f"fleet{i}@mail{i % 97}.example.com"}
                props.update((cohort_property(k), member(i, k)) for k in range(cohorts))
                copy.write_row((f"{data.PREFIX}{i:08d}", json.dumps(props), now, now))
    statistics_refresh(Profile)


def synced_state_seed(sync: Sync) -> int:
    """Acknowledge every current member, as if the sync had exported its cohort."""
    identity = "distinct_id" if sync.identity_property == DISTINCT_ID_IDENTITY else "properties ->> '$email'"
    members_sql, params = cohort_members(sync.cohort).order_by().values("pk").query.sql_with_params()
    table = connection.ops.quote_name(SyncedMember._meta.db_table)
    profiles = connection.ops.quote_name(Profile._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (sync_id, identity_value, is_member, acknowledged_at) "
            f"SELECT %s, {identity}, true, now() FROM {profiles} WHERE id IN ({members_sql})",
            [sync.pk, *params],
        )
        return int(cursor.rowcount)


def _destination(kind: str, emulator: SandboxProcess, number: int) -> Destination:
    common = {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}
    name = f"{NAME_PREFIX}fleet {kind} {number}"
    if kind == "marketo":
        return Destination.objects.create(name=name, kind=kind, base_url=emulator.marketo_base_url,
                                          options=dict(MARKETO_LIMITS), **common)
    sfmc = {"subdomain": "bench", "auth_base_url": emulator.sfmc_auth_base_url, "options": dict(SFMC_LIMITS)}
    if kind == "sfmc_data_extension":
        return Destination.objects.create(name=name, kind=kind, data_extension_key="CohortSync_Demo",
                                          key_column="SubscriberKey", **sfmc, **common)
    return Destination.objects.create(name=name, kind=kind, attribute_set="Email Demographics", **sfmc, **common)


def emulators_configure(emulators: list[SandboxProcess], *, syncs: int) -> None:
    for number, emulator in enumerate(emulators):
        mine = [i for i in range(syncs) if i // len(KINDS) % len(emulators) == number]
        emulator.configure("marketo", {
            **MARKETO_LIMITS, "daily_quota": 10**9, "latency": MARKETO_LATENCY, "latency_jitter": LATENCY_JITTER,
            "fields": [{"name": marketo_field(i), "dataType": "boolean"} for i in mine],
        })
        emulator.configure("sfmc", {
            "requests_per_second": SFMC_LIMITS["requests_per_second"],
            "max_concurrent_requests": SFMC_LIMITS["max_concurrency"],
            "latency_seconds": SFMC_LATENCY, "latency_jitter": LATENCY_JITTER,
            "attributes": [{"name": sfmc_field(i)} for i in mine],
        })


def fleet_create(*, syncs: int, emulators: list[SandboxProcess]) -> dict[Sync, Account]:
    """Sync i: kind i % 3, on emulator (i // 3) % EMULATORS, its own cohort and field."""
    destinations = {
        (kind, number): _destination(kind, emulator, number + 1)
        for number, emulator in enumerate(emulators) for kind in KINDS
    }
    created: dict[Sync, Account] = {}
    for i in range(syncs):
        kind = KINDS[i % len(KINDS)]
        emulator = i // len(KINDS) % len(emulators)
        cohort = Cohort.objects.create(
            name=f"{NAME_PREFIX}fleet cohort {i:03d}", kind=Cohort.Kind.RULES,
            rules={"all": [{"property": cohort_property(i), "op": "eq", "value": True}]},
        )
        marketo = kind == "marketo"
        sync = Sync.objects.create(
            name=f"{NAME_PREFIX}fleet sync {i:03d}", cohort=cohort,
            destination=destinations[(kind, emulator)],
            target_field=marketo_field(i) if marketo else sfmc_field(i),
            identity_property="$email" if marketo else DISTINCT_ID_IDENTITY,
            mode=Sync.Mode.DYNAMIC, interval_minutes=15,
        )
        created[sync] = account_of(kind, emulator)
    return created


def schedules_make(syncs: list[Sync], *, due_at: Any) -> int:
    for sync in syncs:
        sync_schedule_update(sync=sync)
    names = [sync_schedule_name(sync.pk) for sync in syncs]
    return Schedule.objects.filter(name__in=names).update(next_run=due_at)


# --- measuring ----------------------------------------------------------------------------


def process_group_cpu_seconds(pgid: int) -> float:
    """User + system CPU of the live processes of a process group (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def database_activity() -> tuple[float, int]:
    """(seconds spent executing statements, transactions) in this database so far."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT active_time, xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
        )
        active_ms, transactions = cursor.fetchone()
    return float(active_ms or 0.0) / 1000, int(transactions or 0)


@dataclass
class Snapshot:
    cpu: float
    db_seconds: float
    db_transactions: int
    calls: dict[Account, dict[str, Any]]


def _snapshot(pgid: int, emulators: list[SandboxProcess]) -> Snapshot:
    seconds, transactions = database_activity()
    calls = {Account(n, api): e.calls(api) for n, e in enumerate(emulators) for api in ("marketo", "sfmc")}
    return Snapshot(process_group_cpu_seconds(pgid), seconds, transactions, calls)


def _refused(api: str, before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    if api == "sfmc":
        count = int(after.get("refused") or 0) - int(before.get("refused") or 0)
        return {"429": count} if count else {}
    old = before.get("refused") or {}
    return {code: n for code, total in (after.get("refused") or {}).items() if (n := total - int(old.get(code, 0))) > 0}


def _account_cycles(before: Snapshot, after: Snapshot, runs: list[SyncRun],
                    accounts: dict[int, Account]) -> list[AccountCycle]:
    result = []
    for account, calls_after in after.calls.items():
        calls_before = before.calls[account]
        by_after, by_before = calls_after.get("by_endpoint") or {}, calls_before.get("by_endpoint") or {}

        def delta(endpoint: str, by_after: dict[str, Any] = by_after, by_before: dict[str, Any] = by_before) -> int:
            return int(by_after.get(endpoint, 0)) - int(by_before.get(endpoint, 0))

        calls = int(calls_after.get("total", 0)) - int(calls_before.get("total", 0))
        budget_calls = calls - (delta(MARKETO_IDENTITY) if account.api == "marketo" else delta("POST /v2/token"))
        mine = [r for r in runs if accounts[r.sync_id] == account]
        if account.api == "marketo":
            bound = best_seconds(calls=budget_calls, window_calls=MARKETO_LIMITS["calls_per_20s"], window_seconds=20.0,
                                 concurrency=MARKETO_LIMITS["max_concurrency"], latency=MARKETO_LATENCY)
        else:
            bound = best_seconds(calls=budget_calls, window_calls=SFMC_LIMITS["requests_per_second"], window_seconds=1.0,
                                 concurrency=SFMC_LIMITS["max_concurrency"], latency=SFMC_LATENCY)
        result.append(AccountCycle(
            account=account, syncs=len({r.sync_id for r in mine}), calls=calls, budget_calls=budget_calls,
            writes=sum(delta(e) for e in WRITE_ENDPOINTS[account.api]),
            refused=_refused(account.api, calls_before, calls_after),
            run_api_calls=sum(r.api_calls for r in mine), bound_seconds=bound,
        ))
    return result


# --- the cluster --------------------------------------------------------------------------


@contextmanager
def task_cluster(*, env: dict[str, str], workers: int, log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`manage.py qcluster` in a process group of its own, as a supervisor would run it."""
    env = {**env, "Q_WORKERS": str(workers), "TASK_QUEUE_NAME": f"bench-fleet-{uuid.uuid4().hex[:8]}",
           "LOG_LEVEL": "INFO"}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, str(MANAGE), "qcluster"], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while " running." not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"qcluster did not start; see {log_path}.")
            time.sleep(0.2)
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(process.pid, 9)
        except ProcessLookupError:
            pass
        process.wait()


def _cycle_runs(syncs: list[Sync], due_at: Any) -> list[SyncRun]:
    return list(SyncRun.objects.filter(sync__in=syncs, created_at__gte=due_at).order_by("pk"))


def dead_rows_clear() -> None:
    """VACUUM (ANALYZE) what a cycle rewrites: the churned profiles, the synced state and
    the API budget rows (tens of thousands of updates a cycle). Production's autovacuum
    clears dead rows; this machine's PostgreSQL runs with autovacuum off (docs/benchmarks.md,
    round 3), and a second cycle, or a second run of the bench, would read the first's."""
    with connection.cursor() as cursor:
        for model in (Profile, SyncedMember, ApiBudget):
            cursor.execute(f"VACUUM (ANALYZE) {connection.ops.quote_name(model._meta.db_table)}")


def cycle_run(
    *, number: int, fleet: dict[Sync, Account], members: int, pgid: int, emulators: list[SandboxProcess],
    out: Callable[[str], None],
) -> CycleResult:
    syncs = list(fleet)
    churned = 0
    for sync in syncs:
        left, joined = data.memberships_churn(count=int(members * CHURN_SHARE), salt=f"cycle-{number}",
                                              prop=sync.cohort.rules["all"][0]["property"])
        churned += left + joined
    dead_rows_clear()
    out(f"  cycle {number}: {churned:,} memberships changed; every schedule due now ...")
    time.sleep(2.0)  # the cluster's idle activity settles before the counters are read
    before = _snapshot(pgid, emulators)
    due_at = timezone.now()
    Schedule.objects.filter(name__in=[sync_schedule_name(s.pk) for s in syncs]).update(next_run=due_at)
    deadline = time.monotonic() + CYCLE_TIMEOUT_SECONDS
    while True:
        runs = _cycle_runs(syncs, due_at)
        done = [r for r in runs if r.status in FINISHED]
        if len(done) >= len(syncs) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    time.sleep(2.0)  # the workers' last statistics reach pg_stat_database
    after = _snapshot(pgid, emulators)
    started = [r.started_at for r in runs if r.started_at]
    ended = [r.finished_at for r in done if r.finished_at]
    wall = (max(ended) - min(started)).total_seconds() if started and ended else float("nan")
    statuses: dict[str, int] = {}
    for run in runs:
        statuses[run.status] = statuses.get(run.status, 0) + 1
    return CycleResult(
        number=number, syncs=len(syncs), due_at=due_at, runs_by_status=statuses, finished=len(done),
        wall_seconds=wall, lag_seconds=(min(started) - due_at).total_seconds() if started else float("nan"),
        run_seconds=sorted((r.finished_at - r.started_at).total_seconds() for r in done if r.started_at and r.finished_at),
        changes=sum(r.attempted_adds + r.attempted_removes for r in done),
        failed_users=sum(r.failed_adds + r.failed_removes for r in done),
        cluster_cpu_seconds=after.cpu - before.cpu,
        database_active_seconds=after.db_seconds - before.db_seconds,
        database_transactions=after.db_transactions - before.db_transactions,
        accounts=_account_cycles(before, after, done, {sync.pk: account for sync, account in fleet.items()}),
    )


def fleet_run(
    *, syncs: int = DEFAULT_SYNCS, members: int = DEFAULT_MEMBERS, cycles: int = DEFAULT_CYCLES,
    workers: int = DEFAULT_WORKERS, command: str = "", out: Callable[[str], None] = print,
) -> FleetResult:
    result = FleetResult(syncs=syncs, members=members, workers=workers, command=command)
    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    out(f"Cleaning earlier bench data in {connection.settings_dict.get('NAME')} ...")
    bench_data_clear()
    work = Path(settings.VAR_DIR) / "bench"
    profiles = math.ceil(members * 100 / 99)
    with ExitStack() as stack:
        emulators = [
            stack.enter_context(SandboxProcess(env=_child_env(None), log_path=work / f"fleet-sandbox-{n + 1}.log"))
            for n in range(EMULATORS)
        ]
        emulators_configure(emulators, syncs=syncs)
        out(f"Seeding {profiles:,} profiles, {syncs} cohorts of ~{members:,} members and their synced state ...")
        profiles_copy(count=profiles, cohorts=syncs)
        fleet = fleet_create(syncs=syncs, emulators=emulators)
        seeded = sum(synced_state_seed(sync) for sync in fleet)
        dead_rows_clear()  # also those of the earlier run's bench data, cleared above
        # Not due before the cluster runs: each cycle makes them due itself.
        schedules_make(list(fleet), due_at=timezone.now() + dt.timedelta(days=1))
        env = _child_env(None)
        hosts = [h for h in env.get("COHORTSYNC_ALLOWED_API_HOSTS", "").split(",") if h.strip()]
        env["COHORTSYNC_ALLOWED_API_HOSTS"] = ",".join([*hosts, *(f"{HOST}:{e.port}" for e in emulators)])
        result.setup_seconds = time.perf_counter() - started
        out(f"  {seeded:,} acknowledged users seeded; setup took {result.setup_seconds:.0f} s. "
            f"Starting qcluster with Q_WORKERS={workers} ...")
        cluster = stack.enter_context(task_cluster(env=env, workers=workers, log_path=work / "fleet-qcluster.log"))
        for number in range(1, cycles + 1):
            cycle = cycle_run(number=number, fleet=fleet, members=members, pgid=cluster.pid,
                              emulators=emulators, out=out)
            result.cycles.append(cycle)
            out(cycle_line(cycle))
    result.machine = machine_info()
    return result


# --- report -------------------------------------------------------------------------------


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(share * len(values)))]


def cycle_line(cycle: CycleResult) -> str:
    return (
        f"  cycle {cycle.number}: {cycle.finished}/{cycle.syncs} runs in {cycle.wall_seconds:.1f} s "
        f"(scheduler lag {cycle.lag_seconds:.1f} s); runs {cycle.runs_by_status}; "
        f"{cycle.changes:,} users sent, {cycle.failed_users:,} failed; run p50 "
        f"{statistics.median(cycle.run_seconds) if cycle.run_seconds else float('nan'):.1f} s, max "
        f"{max(cycle.run_seconds, default=float('nan')):.1f} s; worker CPU {cycle.cluster_cpu_seconds:.1f} s; "
        f"database {cycle.database_active_seconds:.1f} s in {cycle.database_transactions:,} transactions"
    )


def markdown(result: FleetResult) -> str:
    rows = [
        "| cycle | runs | wall s | scheduler lag s | run p50 / p90 / max s | users sent | failed users "
        "| worker CPU s | database s (transactions) |",
        "|---:|---|---:|---:|---|---:|---:|---:|---|",
    ]
    for c in result.cycles:
        runs = ", ".join(f"{n} {status}" for status, n in sorted(c.runs_by_status.items()))
        rows.append(
            f"| {c.number} | {runs} | {c.wall_seconds:.1f} | {c.lag_seconds:.1f} "
            f"| {_percentile(c.run_seconds, 0.5):.1f} / {_percentile(c.run_seconds, 0.9):.1f} / "
            f"{max(c.run_seconds, default=float('nan')):.1f} | {c.changes:,} | {c.failed_users:,} "
            f"| {c.cluster_cpu_seconds:.1f} | {c.database_active_seconds:.1f} ({c.database_transactions:,}) |"
        )
    rows += ["", "| cycle | account | syncs | calls (budget counts) | writes | refused | bound s |",
             "|---:|---|---:|---:|---:|---|---:|"]
    for c in result.cycles:
        for a in c.accounts:
            refused = ", ".join(f"{n} × {code}" for code, n in sorted(a.refused.items())) or "0"
            rows.append(f"| {c.number} | {a.account.label} | {a.syncs} | {a.calls:,} ({a.budget_calls:,}) "
                        f"| {a.writes:,} | {refused} | {a.bound_seconds:.1f} |")
    return "\n".join(rows)


def targets(result: FleetResult) -> list[tuple[str, bool, str]]:
    checks = []
    for c in result.cycles:
        checks.append((
            f"cycle {c.number}: {c.syncs} syncs complete within {CYCLE_TARGET_SECONDS:.0f} s",
            c.finished == c.syncs and c.wall_seconds <= CYCLE_TARGET_SECONDS,
            f"{c.finished}/{c.syncs} finished in {c.wall_seconds:.1f} s "
            f"(slowest account's budget alone: {max((a.bound_seconds for a in c.accounts), default=0):.1f} s)",
        ))
        over = [a for a in c.accounts if a.refused]
        checks.append((
            f"cycle {c.number}: no account exceeds its budget",
            not over,
            "; ".join(f"{a.account.label}: {sum(a.refused.values())} calls refused" for a in over) or "0 calls refused",
        ))
    return checks


def summary_text(result: FleetResult) -> str:
    lines = ["", f"Fleet: {result.syncs} syncs × ~{result.members:,} members, Q_WORKERS={result.workers}",
             markdown(result), "", "Targets:"]
    lines += console_verdict_lines(targets(result))
    return "\n".join(lines)


def record(result: FleetResult, *, doc: Path) -> Path:
    machine = result.machine
    when = timezone.now().strftime("%Y-%m-%d %H:%M UTC")
    block = [
        "", f"### {when}: fleet of {result.syncs} syncs × ~{result.members:,} members (Q_WORKERS={result.workers})", "",
        f"`{result.command}` (setup {result.setup_seconds:.0f} s). {machine_text(machine)}", "",
        markdown(result), "", "Targets:", "",
    ]
    return results_append(block + verdict_lines(targets(result)), doc=doc)
