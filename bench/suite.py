"""The bench orchestrator: prepare the database, start the emulators, run every step in a
fresh subprocess, collect what each one measured.

Only the parent touches bench data (cleanup, churn, failure rows); children run exactly
one measured step each and print one JSON line.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from bench import data
from bench.paths import PathSpec, path_spec
from bench.sandbox import HOST, MANAGE, SandboxProcess
from cohorts.models import Cohort, Profile
from destinations.models import Destination
from syncs.models import RunPlanChunk, RunStatus, Sync, SyncedMember, SyncFailure, SyncRun

RESULT_MARK = "BENCH-RESULT "
NAME_PREFIX = "bench: "
DEFAULT_PROFILES = 100_000
LARGE_PROFILES = 1_000_000
CHURN_SHARE = 0.01
WRITE_ENDPOINTS = {
    "marketo": ("POST /rest/v1/leads.json", "POST /bulk/v1/leads.json"),
    "sfmc": ("POST /hub/v1/dataevents/{key}/rowset", "PUT /data/v1/async/dataextensions/{key}/rows",
             "PATCH /contacts/v1/contacts"),
}


class BenchRefused(Exception):
    """The bench will not run here (wrong database); the message says why."""


@dataclass
class StepResult:
    path: str
    step: str
    values: dict[str, Any]
    bound: float | None = None
    emulator_cpu_seconds: float = 0.0
    write_calls: int = 0
    # Calls the emulator refused, by code (Marketo's 606, 615...): each one cost a retry.
    refused: dict[str, int] = field(default_factory=dict)

    @property
    def users_per_second(self) -> float | None:
        users = self.values.get("users") or 0
        # Validation is destination calls only; everything else (planning included) is ours.
        # The runner plans while it validates, so only the validation that outlasted the
        # plan is taken off.
        validate = float(self.values.get("validate_seconds", 0.0))
        waited = max(0.0, validate - float(self.values.get("plan_seconds", 0.0)))
        busy = float(self.values.get("seconds", 0.0)) - waited
        return users / busy if users and busy > 0 else None

    @property
    def share_of_bound(self) -> float | None:
        if self.bound and self.users_per_second:
            return self.users_per_second / self.bound
        return None


@dataclass
class SuiteResult:
    profiles: int
    paths: list[str]
    command: str
    steps: list[StepResult] = field(default_factory=list)
    csv_seconds: float = 0.0
    seed_seconds: float = 0.0
    total_seconds: float = 0.0
    machine: dict[str, str] = field(default_factory=dict)


def database_check(*, allow_any_database: bool) -> str:
    """The database name, or BenchRefused when the bench must not write into it."""
    name = str(connection.settings_dict.get("NAME") or "")
    if connection.vendor != "postgresql":
        raise BenchRefused(
            "The bench runs on PostgreSQL only (the targets are PostgreSQL targets, and it "
            f"writes up to a million profiles): this is {connection.vendor}. Set "
            "DATABASE_URL=postgres://.../cohortsync_bench."
        )
    if "bench" not in name.lower() and not allow_any_database:
        raise BenchRefused(
            f"The database '{name}' is not a bench database: the bench creates up to a million "
            "profiles and deletes its own data between runs. Use a database whose name "
            "contains 'bench' (createdb cohortsync_bench), or pass --allow-any-database."
        )
    return name


def suite_run(
    *,
    profiles: int,
    path_names: Sequence[str],
    command: str,
    skip_import: bool = False,
    admin_pages: bool = True,
    out: Callable[[str], None] = print,
) -> SuiteResult:
    started = time.perf_counter()
    result = SuiteResult(profiles=profiles, paths=list(path_names), command=command)
    # The machine's load says how far the figures are ours: 2 cores shared with anything else.
    load_at_start = os.getloadavg()[0]
    call_command("migrate", verbosity=0)
    out(f"Cleaning earlier bench data in {connection.settings_dict.get('NAME')} ...")
    bench_data_clear()
    work = Path(settings.VAR_DIR) / "bench"
    csv_path = work / f"profiles-{profiles}.csv"
    with SandboxProcess(env=_child_env(None), log_path=work / "sandbox.log") as sandbox:
        env = _child_env(sandbox)
        if skip_import:
            t = time.perf_counter()
            data.profiles_copy(count=profiles)
            result.seed_seconds = time.perf_counter() - t
            out(f"Seeded {profiles:,} profiles with COPY in {result.seed_seconds:.1f} s.")
        else:
            t = time.perf_counter()
            size = data.profiles_csv_write(path=csv_path, count=profiles)
            result.csv_seconds = time.perf_counter() - t
            out(f"Wrote {csv_path} ({size / 1e6:.0f} MB) in {result.csv_seconds:.1f} s; importing ...")
            step = StepResult("profiles", "import", _child({"step": "import", "csv_path": str(csv_path)}, env))
            result.steps.append(step)
            out(_line(step))
            csv_path.unlink(missing_ok=True)
        cohort = Cohort.objects.create(
            name=f"{NAME_PREFIX}cohort", kind=Cohort.Kind.RULES, rules=data.cohort_rules(),
            description="Created by manage.py bench.",
        )
        row_bytes = bulk_row_bytes(profiles)
        first_sync: Sync | None = None
        for index, name in enumerate(path_names):
            spec = path_spec(name, profiles=profiles)
            sandbox.reset(spec.emulator_prefix)
            sandbox.configure(spec.emulator_prefix, spec.emulator_config)
            sync = _sync_create(spec, cohort, sandbox)
            first_sync = first_sync or sync
            for label in ("first export", "1% churn", "nothing changed"):
                if label == "1% churn":
                    left, joined = data.memberships_churn(count=int(profiles * CHURN_SHARE), salt=f"{name}-{index}")
                    out(f"  churn: {left:,} members left the cohort, {joined:,} joined")
                step = _sync_step(spec, sync, label, sandbox, env, row_bytes, anti_join=label == "1% churn")
                result.steps.append(step)
                out(_line(step))
            # The emulator holds every lead/row in memory; free it before the next path.
            sandbox.reset(spec.emulator_prefix)
        if admin_pages:
            if first_sync is None:
                first_sync = _sync_create(path_spec("marketo_sync", profiles=profiles), cohort, sandbox)
            run = _failures_run(first_sync, profiles)
            step = StepResult("admin", "pages", _child({"step": "admin", "run_id": run.pk, "cohort_id": cohort.pk}, env))
            result.steps.append(step)
            out(_line(step))
    result.total_seconds = time.perf_counter() - started
    result.machine = machine_info()
    result.machine["load"] = f"{load_at_start:.1f} / {os.getloadavg()[0]:.1f}"
    return result


def _sync_step(
    spec: PathSpec, sync: Sync, label: str, sandbox: SandboxProcess, env: dict[str, str],
    row_bytes: float, *, anti_join: bool,
) -> StepResult:
    before_calls = sandbox.calls(spec.emulator_prefix)
    before_cpu = sandbox.cpu_seconds()
    values = _child({"step": "sync", "sync_id": sync.pk, "anti_join": anti_join}, env)
    cpu = sandbox.cpu_seconds() - before_cpu
    after_calls = sandbox.calls(spec.emulator_prefix)
    writes = sum(
        int(after_calls.get("by_endpoint", {}).get(k, 0)) - int(before_calls.get("by_endpoint", {}).get(k, 0))
        for k in WRITE_ENDPOINTS[spec.emulator_prefix]
    )
    users = int(values.get("users") or 0)
    refused_before = before_calls.get("refused") or {}
    refused = {
        code: new for code, count in (after_calls.get("refused") or {}).items()
        if (new := count - int(refused_before.get(code, 0))) > 0
    }
    return StepResult(
        path=spec.name, step=label, values=values,
        bound=spec.bound(users=users, bulk_row_bytes=row_bytes),
        emulator_cpu_seconds=cpu, write_calls=writes, refused=refused,
    )


BULK_ROW_SAMPLE = 20_000


def bulk_row_bytes(profiles: int) -> float:
    """Average bytes of one bulk CSV line ("email,true\\r\\n") over the generated data.
    Sampled evenly across all `profiles`: emails grow with the profile number
    (user9999999@... is 3 bytes longer than user9999@...), so the first profiles alone
    underestimate a 10M export's files and make its bound unreachably high."""
    stride = max(1, profiles // BULK_ROW_SAMPLE)
    sample = [data.profile_values(i)[1]["$email"] for i in range(0, profiles, stride)]
    return statistics.fmean(len(email) + len(",false\r\n") for email in sample)


def _sync_create(spec: PathSpec, cohort: Cohort, sandbox: SandboxProcess) -> Sync:
    common = {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret",
              "options": dict(spec.destination_options)}
    if spec.kind == "marketo":
        destination = Destination.objects.create(
            name=f"{NAME_PREFIX}{spec.name}", kind=spec.kind, base_url=sandbox.marketo_base_url, **common
        )
    else:
        destination = Destination.objects.create(
            name=f"{NAME_PREFIX}{spec.name}", kind=spec.kind, subdomain="bench",
            auth_base_url=sandbox.sfmc_auth_base_url, data_extension_key="CohortSync_Demo",
            key_column="SubscriberKey", **common,
        )
    # Disabled: no schedule fires while the bench drives the runs itself.
    return Sync.objects.create(
        name=f"{NAME_PREFIX}{spec.name}", cohort=cohort, destination=destination,
        target_field=spec.target_field, identity_property=spec.identity_property,
        mode=Sync.Mode.DYNAMIC, enabled=False,
    )


def _failures_run(sync: Sync, count: int) -> SyncRun:
    now = timezone.now()
    run = SyncRun.objects.create(
        sync=sync, trigger=SyncRun.Trigger.CLI, status=RunStatus.PARTIAL, started_at=now,
        finished_at=now, planned_adds=count, attempted_adds=count, failed_adds=count,
        error_code="1003", error_message=f"{count:,} users failed (generated by the bench).",
    )
    data.failures_copy(run_id=run.pk, count=count)
    return run


def bench_data_clear() -> None:
    """Remove what earlier bench runs created. On a bench database the profile table is
    emptied outright; elsewhere (--allow-any-database) only bench-* profiles go."""
    q = connection.ops.quote_name
    syncs = list(Sync.objects.filter(name__startswith=NAME_PREFIX).values_list("pk", flat=True))
    with transaction.atomic(), connection.cursor() as cursor:
        if syncs:
            runs = f"SELECT id FROM {q(SyncRun._meta.db_table)} WHERE sync_id = ANY(%s)"
            cursor.execute(f"DELETE FROM {q(SyncFailure._meta.db_table)} WHERE run_id IN ({runs})", [syncs])
            cursor.execute(f"DELETE FROM {q(RunPlanChunk._meta.db_table)} WHERE run_id IN ({runs})", [syncs])
            cursor.execute(f"UPDATE {q(SyncRun._meta.db_table)} SET retry_of_id = NULL WHERE sync_id = ANY(%s)", [syncs])
            cursor.execute(f"DELETE FROM {q(SyncRun._meta.db_table)} WHERE sync_id = ANY(%s)", [syncs])
            cursor.execute(f"DELETE FROM {q(SyncedMember._meta.db_table)} WHERE sync_id = ANY(%s)", [syncs])
            cursor.execute(f"DELETE FROM {q(Sync._meta.db_table)} WHERE id = ANY(%s)", [syncs])
        Destination.objects.filter(name__startswith=NAME_PREFIX).delete()
        Cohort.objects.filter(name__startswith=NAME_PREFIX).delete()
        profiles = q(Profile._meta.db_table)
        if "bench" in str(connection.settings_dict.get("NAME") or "").lower():
            cursor.execute(f"UPDATE {q(SyncFailure._meta.db_table)} SET profile_id = NULL WHERE profile_id IS NOT NULL")
            cursor.execute(f"TRUNCATE {profiles} CASCADE")
        else:
            cursor.execute(
                f"UPDATE {q(SyncFailure._meta.db_table)} SET profile_id = NULL WHERE profile_id IN "
                f"(SELECT id FROM {profiles} WHERE distinct_id LIKE %s)", [f"{data.PREFIX}%"],
            )
            cursor.execute(f"DELETE FROM {profiles} WHERE distinct_id LIKE %s", [f"{data.PREFIX}%"])


def _child_env(sandbox: SandboxProcess | None) -> dict[str, str]:
    env = dict(os.environ)
    # Children write where this process writes (a test database included).
    env["DATABASE_URL"] = _database_url()
    if sandbox is not None:
        hosts = [h for h in env.get("COHORTSYNC_ALLOWED_API_HOSTS", "").split(",") if h.strip()]
        # The emulators are reachable only because their host is allowed, as in production.
        env["COHORTSYNC_ALLOWED_API_HOSTS"] = ",".join([*hosts, f"{HOST}:{sandbox.port}"])
    env.setdefault("LOG_LEVEL", "WARNING")
    # Measure production settings: DEBUG would record every SQL statement in memory.
    env["DEBUG"] = "false"
    env["SECRET_KEY"] = settings.SECRET_KEY
    env["FIELD_ENCRYPTION_KEYS"] = ",".join(settings.FIELD_ENCRYPTION_KEYS)
    return env


def _database_url() -> str:
    s = connection.settings_dict
    auth = s.get("USER") or ""
    if s.get("PASSWORD"):
        auth += f":{s['PASSWORD']}"
    return f"postgres://{auth}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


def _child(spec: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(MANAGE), "bench", "--step", json.dumps(spec)],
        env=env, stdout=subprocess.PIPE, stderr=None, text=True, check=False,
    )
    for line in reversed(completed.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    raise RuntimeError(
        f"The bench step {spec['step']} exited with {completed.returncode} without a result; "
        f"its output ended with: {completed.stdout[-1500:]}"
    )


def _line(step: StepResult) -> str:
    from bench.report import step_line

    return step_line(step)


def machine_info() -> dict[str, str]:
    info = {"python": sys.version.split()[0], "cores": str(os.cpu_count() or "?")}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
        info["memory"] = f"{int(mem) / 1024 / 1024:.0f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    from destinations.budget import budget_store_name

    # Where the task queue and the API budgets live: what a cycle's database time includes.
    info["broker"] = "redis" if settings.REDIS_URL else "database"
    info["budget_store"] = budget_store_name()
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        info["postgresql"] = str(cursor.fetchone()[0]).split()[0]
    try:
        root = MANAGE.parent
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, check=False).stdout.strip()
        info["commit"] = f"{commit}{' + uncommitted changes' if dirty else ''}" if commit else "?"
    except OSError:
        info["commit"] = "?"
    return info
