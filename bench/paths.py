"""The destination paths the bench measures, with the limits both sides agree on.

For each path the emulator is configured with limits (POST /<prefix>/_sandbox/config) and
the destination with the same limits in its options, so CohortSync throttles itself to
exactly what the emulator allows. The *bound* of a step is the best users/second those
configured limits allow; the emulator's own CPU must stay well below it (it runs in its
own process, see bench.sandbox), so the bound, not the emulator, is what we measure
against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

MARKETO_SYNC_BATCH = 300
SFMC_ROWSET_BATCH = 50
SFMC_ASYNC_BATCH = 32_000
# Marketo bulk import: bytes per file the emulator (and Marketo) accept.
MARKETO_BULK_BYTES = 10_000_000


@dataclass(frozen=True)
class PathSpec:
    name: str
    kind: str
    title: str
    identity_property: str
    target_field: str
    destination_options: dict[str, Any]
    emulator_prefix: str
    emulator_config: dict[str, Any]
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def bound(self, *, users: int, bulk_row_bytes: float = 0.0) -> float | None:
        """Best users/second the configured limits allow for a run of `users` changes."""
        if users <= 0:
            return None
        return _BOUNDS[self.name](self, users, bulk_row_bytes)


# --- the four paths ------------------------------------------------------------------------

# Marketo sync endpoint: 300 leads per call. Each call takes MARKETO_LATENCY on the
# emulator's side (real Marketo answers a 300-lead call in 0.1-0.5 s) and at most
# MARKETO_CONCURRENCY run at once (Marketo's documented 10): 10 / 0.2 s = 50 calls/s =
# 15,000 leads/s, so a 1M export takes ~67 s. The 20-second window (1,500 calls) is set
# above that rate so it never binds: a sliding window lets short runs burst, which would
# make the bound depend on the run's length.
MARKETO_LATENCY = 0.2
MARKETO_CONCURRENCY = 10
MARKETO_CALLS_PER_20S = 1500

# Marketo bulk import: each job spends at least one step queued and one importing, and
# at most `bulk_max_importing` import at once (Marketo's documented 2). Real imports of a
# 10 MB file take minutes; 20 s per step makes a 1M export (4 files) take >= 60 s.
MARKETO_BULK_STEP_SECONDS = 20.0
MARKETO_BULK_MAX_IMPORTING = 2

# SFMC rowset: 50 rows per request (SFMC's best practice, enforced by the connector);
# each request takes SFMC_ROWSET_LATENCY, SFMC_CONCURRENCY at a time: 8 / 0.05 s = 160
# requests/s = 8,000 rows/s. requests_per_second is set above that so it never binds.
SFMC_ROWSET_LATENCY = 0.05
SFMC_CONCURRENCY = 8
SFMC_ROWSET_RPS = 400

# SFMC async upsert: each request takes SFMC_ASYNC_LATENCY on the emulator's side (SFMC
# is slow per request, fast per row); a job is one submit plus one status read (no
# results read when every row is OK), so a job of 32,000 rows needs 2 x latency, up to
# SFMC_ASYNC_CONCURRENCY requests at a time.
SFMC_ASYNC_LATENCY = 2.0
SFMC_ASYNC_RPS = 50
SFMC_ASYNC_CONCURRENCY = 2

PATHS: dict[str, PathSpec] = {
    "marketo_sync": PathSpec(
        name="marketo_sync",
        kind="marketo",
        title="Marketo, sync endpoint (300 leads per call)",
        identity_property="$email",
        target_field="cohortBench",
        destination_options={
            "calls_per_20s": MARKETO_CALLS_PER_20S,
            "max_concurrency": MARKETO_CONCURRENCY,
            "batch_size": MARKETO_SYNC_BATCH,
            # Never switch to bulk: this path measures the sync endpoint at every size.
            "bulk_threshold": 10**9,
        },
        emulator_prefix="marketo",
        emulator_config={
            "calls_per_20s": MARKETO_CALLS_PER_20S,
            "max_concurrency": MARKETO_CONCURRENCY,
            "daily_quota": 10**9,
            "max_batch_size": MARKETO_SYNC_BATCH,
            "latency": MARKETO_LATENCY,
            "fields": [{"name": "cohortBench", "displayName": "Bench Cohort", "dataType": "boolean"}],
        },
    ),
    "marketo_bulk": PathSpec(
        name="marketo_bulk",
        kind="marketo",
        title="Marketo, bulk import (above bulk_threshold)",
        identity_property="$email",
        target_field="cohortBench",
        destination_options={
            "calls_per_20s": MARKETO_CALLS_PER_20S,
            "max_concurrency": MARKETO_CONCURRENCY,
            "batch_size": MARKETO_SYNC_BATCH,
            # The default: full exports go bulk, a 1 % churn of 100k/1M goes sync.
            "bulk_threshold": 50_000,
        },
        emulator_prefix="marketo",
        emulator_config={
            "calls_per_20s": MARKETO_CALLS_PER_20S,
            "max_concurrency": MARKETO_CONCURRENCY,
            "daily_quota": 10**9,
            "max_batch_size": MARKETO_SYNC_BATCH,
            "max_bulk_bytes": MARKETO_BULK_BYTES,
            "bulk_queue_limit": 10,
            "bulk_max_importing": MARKETO_BULK_MAX_IMPORTING,
            "bulk_step_seconds": MARKETO_BULK_STEP_SECONDS,
            "latency": MARKETO_LATENCY,
            "fields": [{"name": "cohortBench", "displayName": "Bench Cohort", "dataType": "boolean"}],
        },
        notes="Steps below bulk_threshold (50,000 changes) use the sync endpoint, as in production.",
        extra={"bulk_threshold": 50_000},
    ),
    "sfmc_rowset": PathSpec(
        name="sfmc_rowset",
        kind="sfmc_data_extension",
        title="SFMC data extension, rowset (50 rows per request)",
        identity_property="$distinct_id",
        target_field="Bench_Cohort",
        destination_options={
            "requests_per_second": SFMC_ROWSET_RPS,
            "max_concurrency": SFMC_CONCURRENCY,
            "rowset_batch_size": SFMC_ROWSET_BATCH,
            # Never switch to async: this path measures the rowset endpoint at every size.
            "async_threshold": 10**9,
        },
        emulator_prefix="sfmc",
        emulator_config={
            "requests_per_second": SFMC_ROWSET_RPS,
            "max_concurrent_requests": SFMC_CONCURRENCY,
            "latency_seconds": SFMC_ROWSET_LATENCY,
        },
    ),
    "sfmc_async": PathSpec(
        name="sfmc_async",
        kind="sfmc_data_extension",
        title="SFMC data extension, async upsert (32,000 rows per request)",
        identity_property="$distinct_id",
        target_field="Bench_Cohort",
        destination_options={
            "requests_per_second": SFMC_ASYNC_RPS,
            "max_concurrency": SFMC_ASYNC_CONCURRENCY,
            "async_batch_size": SFMC_ASYNC_BATCH,
            # Every step async, churn included.
            "async_threshold": 0,
        },
        emulator_prefix="sfmc",
        emulator_config={
            "requests_per_second": SFMC_ASYNC_RPS,
            "max_concurrent_requests": SFMC_ASYNC_CONCURRENCY,
            "latency_seconds": SFMC_ASYNC_LATENCY,
            "async_not_found_polls": 0,
            "async_pending_polls": 0,
            "async_max_items": SFMC_ASYNC_BATCH,
            "results_page_size": 2500,
        },
    ),
}


# --- bounds ---------------------------------------------------------------------------------


def _marketo_sync_bound(spec: PathSpec, users: int, row_bytes: float) -> float:
    config = spec.emulator_config
    calls_per_second = config["calls_per_20s"] / 20.0
    if config["latency"]:
        calls_per_second = min(calls_per_second, config["max_concurrency"] / config["latency"])
    return calls_per_second * MARKETO_SYNC_BATCH


def _marketo_bulk_bound(spec: PathSpec, users: int, row_bytes: float) -> float:
    if users <= int(spec.extra.get("bulk_threshold", 0)):
        return _marketo_sync_bound(spec, users, row_bytes)
    config = spec.emulator_config
    rows_per_file = max(1, int(config["max_bulk_bytes"] // max(row_bytes, 1.0)))
    files = math.ceil(users / rows_per_file)
    step = float(config["bulk_step_seconds"])
    # One step queued, then the files import `bulk_max_importing` at a time, one step each.
    seconds = step * (1 + math.ceil(files / int(config["bulk_max_importing"])))
    return users / seconds


def _sfmc_rowset_bound(spec: PathSpec, users: int, row_bytes: float) -> float:
    config = spec.emulator_config
    per_second = float(config["requests_per_second"])
    if config["latency_seconds"]:
        per_second = min(per_second, config["max_concurrent_requests"] / config["latency_seconds"])
    return per_second * SFMC_ROWSET_BATCH


def _sfmc_async_bound(spec: PathSpec, users: int, row_bytes: float) -> float:
    config = spec.emulator_config
    jobs = math.ceil(users / SFMC_ASYNC_BATCH)
    requests_per_job = 2 + int(config["async_not_found_polls"]) + int(config["async_pending_polls"])
    latency = float(config["latency_seconds"])
    concurrency = int(config["max_concurrent_requests"])
    by_rate = jobs * requests_per_job / float(config["requests_per_second"])
    # Requests of one job are sequential; `concurrency` jobs proceed at once.
    by_latency = math.ceil(jobs / concurrency) * requests_per_job * latency
    return users / max(by_rate, by_latency)


_BOUNDS = {
    "marketo_sync": _marketo_sync_bound,
    "marketo_bulk": _marketo_bulk_bound,
    "sfmc_rowset": _sfmc_rowset_bound,
    "sfmc_async": _sfmc_async_bound,
}
