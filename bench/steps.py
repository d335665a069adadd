"""One measured step, run in its own process by `manage.py bench --step ...`.

A fresh process per step keeps each step's peak memory its own (earlier steps would
otherwise leave their high-water mark behind). The engine is timed from outside by
wrapping the functions the runner calls: validation (destination calls only), planning
(the diff, in the database) and sending; nothing in the engine knows it is measured.
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import F
from django.db.models.fields.json import KeyTextTransform
from django.test import Client
from django.urls import reverse

from bench.measure import measured, timed
from cohorts.importing import profiles_import
from cohorts.models import Cohort
from cohorts.selectors import cohort_members
from destinations.kinds import kind_spec
from destinations.models import Destination
from destinations.registry import connector_build, destination_config
from syncs.engine import runner
from syncs.models import DISTINCT_ID_IDENTITY, Sync, SyncedMember, SyncRun
from syncs.services import sync_run_create, sync_run_execute

ADMIN_USERNAME = "bench-admin"
PAGE_REPEATS = 3


def step_import(*, csv_path: str) -> dict[str, Any]:
    with measured() as m:
        report = profiles_import(source=Path(csv_path), file_format="csv", batch_size=5000)
    return {
        "users": report.rows_accepted,
        "created": report.created,
        "updated": report.updated,
        "rejected": report.rejected,
        **_measured_fields(m),
    }


def _instrument(timings: dict[str, float]) -> None:
    """Wrap what runner._execute calls so validate / plan / send are timed separately
    (sending is reported as push_seconds, the name earlier results use)."""
    plan_build, units_send = runner.plan_build, runner.units_send

    def timed_plan_build(**kwargs: Any) -> Any:
        with timed(timings, "plan_seconds"):
            return plan_build(**kwargs)

    def timed_units_send(**kwargs: Any) -> Any:
        with timed(timings, "push_seconds"):
            return units_send(**kwargs)

    def timed_connector_for(destination: Any) -> Any:
        connector = _unbounded_connector_for(destination)
        validate = connector.validate_target

        def timed_validate(target: Any) -> Any:
            with timed(timings, "validate_seconds"):
                return validate(target)

        connector.validate_target = timed_validate
        return connector

    runner.plan_build = timed_plan_build
    runner.units_send = timed_units_send
    runner.connector_for = timed_connector_for


def _unbounded_connector_for(destination: Destination) -> Any:
    """The destination's connector with its options taken as they are: the bench's emulator
    allows more than Marketo's documented limits (calls_per_20s above 100 at 1M profiles),
    which the options' bounds refuse for real destinations."""
    unchecked = copy.copy(destination)
    unchecked.options = {}
    options = kind_spec(destination.kind).options(**(destination.options or {}))
    return connector_build(replace(destination_config(unchecked), options=options))


def step_sync(*, sync_id: int, anti_join: bool = False) -> dict[str, Any]:
    sync = Sync.objects.select_related("cohort", "destination").get(pk=sync_id)
    result: dict[str, Any] = {}
    if anti_join:
        result["anti_join_seconds"] = anti_join_seconds(sync)
    timings: dict[str, float] = {}
    _instrument(timings)
    with measured() as m:
        run = sync_run_create(sync=sync, trigger=SyncRun.Trigger.CLI)
        run = sync_run_execute(run_id=run.pk)
    users = run.attempted_adds + run.attempted_removes
    result.update(
        {
            "run_id": run.pk,
            "status": run.status,
            "error": run.error_message[:300],
            "users": users,
            "planned": run.planned_adds + run.planned_removes,
            "adds": run.succeeded_adds,
            "removes": run.succeeded_removes,
            "failed": run.failed_adds + run.failed_removes,
            "skipped": run.skipped_users,
            "api_calls": run.api_calls,
            **timings,
            **_measured_fields(m),
        }
    )
    return result


def anti_join_seconds(sync: Sync) -> float:
    """The diff as bare SQL over the same tables: members not acknowledged, plus
    acknowledged members no longer in the cohort (no normalising, no staging)."""
    if sync.identity_property == DISTINCT_ID_IDENTITY:
        identity: Any = F("distinct_id")
    else:
        identity = KeyTextTransform(sync.identity_property, "properties")
    members_sql, params = (
        cohort_members(sync.cohort).order_by().annotate(_identity=identity)
        .values_list("_identity").query.sql_with_params()
    )
    synced = connection.ops.quote_name(SyncedMember._meta.db_table)
    adds = (
        f"SELECT COUNT(*) FROM ({members_sql}) m WHERE NOT EXISTS (SELECT 1 FROM {synced} s "
        "WHERE s.sync_id = %s AND s.is_member AND s.identity_value = m.\"_identity\")"
    )
    removes = (
        f"SELECT COUNT(*) FROM {synced} s WHERE s.sync_id = %s AND s.is_member AND NOT EXISTS "
        f"(SELECT 1 FROM ({members_sql}) m WHERE m.\"_identity\" = s.identity_value)"
    )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(adds, [*params, sync.pk])
        cursor.fetchone()
        cursor.execute(removes, [sync.pk, *params])
        cursor.fetchone()
    return time.perf_counter() - started


def step_admin(*, run_id: int, cohort_id: int) -> dict[str, Any]:
    """Time the admin pages a growth engineer opens, through the full Django stack."""
    if "testserver" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    user, _ = get_user_model().objects.get_or_create(
        username=ADMIN_USERNAME, defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    cohort = Cohort.objects.get(pk=cohort_id)
    run = SyncRun.objects.get(pk=run_id)
    pages = {
        "sync list": reverse("admin:syncs_sync_changelist"),
        f"run detail ({run.failures.count():,} failure rows)":
            reverse("admin:syncs_syncrun_change", args=[run_id]),
        f"cohort page ({cohort.name})": reverse("admin:cohorts_cohort_change", args=[cohort_id]),
        "run list": reverse("admin:syncs_syncrun_changelist"),
        # Every profile, and the sync page with its acknowledged members.
        "profile list": reverse("admin:cohorts_profile_changelist"),
        "sync page": reverse("admin:syncs_sync_change", args=[run.sync_id]),
    }
    results = []
    with measured() as m:
        for name, url in pages.items():
            times = []
            status = 0
            for _ in range(1 + PAGE_REPEATS):
                started = time.perf_counter()
                response = client.get(url)
                times.append(time.perf_counter() - started)
                status = response.status_code
            results.append(
                {"page": name, "url": url, "status": status, "cold_ms": times[0] * 1000,
                 "warm_ms": statistics.median(times[1:]) * 1000, "max_ms": max(times) * 1000}
            )
    return {"pages": results, **_measured_fields(m)}


def _measured_fields(m: Any) -> dict[str, Any]:
    return {
        "seconds": m.seconds,
        "baseline_mib": m.baseline_mib,
        "peak_mib": m.peak_mib,
        "peak_over_baseline_mib": m.peak_over_baseline_mib,
        "peak_reset": m.peak_reset,
        "queries": m.queries,
    }


STEPS = {"import": step_import, "sync": step_sync, "admin": step_admin}
