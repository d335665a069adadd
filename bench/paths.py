"""The destination paths the bench measures, with the limits both sides agree on.

For each path one set of limits configures both the emulator (POST
/<prefix>/_sandbox/config) and the destination's options, so CohortSync throttles itself
to exactly what the emulator allows. The *bound* of a step is the best users/second those
limits allow, computed by scheduling the step's calls as early as the limits let them go
(`best_seconds`).

The limits are chosen so that the destination's rate limit (or, for SFMC async and
Marketo bulk, its job latency) is what binds, never the emulator's own processing: the
emulators get concurrency to spare (capacity = concurrency / latency is at least twice
the rate), so the few milliseconds each request costs the emulator's process are absorbed
by the spare slots instead of stretching every call. Latencies vary by ±50 % around their
mean, as real APIs do: calls that all take exactly as long move in lockstep and queue
behind each other's processing.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any

MARKETO_SYNC_BATCH = 300
SFMC_ROWSET_BATCH = 50
SFMC_ASYNC_BATCH = 32_000
# Marketo bulk import: bytes per file the emulator (and Marketo) accept.
MARKETO_BULK_BYTES = 10_000_000
LATENCY_JITTER = 0.5

# Marketo: its documented 100 calls per 20 s and 10 concurrent calls. A 100k export (330
# calls) then spans three windows, so the rate binds. For larger runs the rate is raised so
# that a first export still spans MARKETO_WINDOWS_PER_EXPORT windows, no more, or a 1M
# suite would not fit in 10 minutes (at 100 calls / 20 s, 1M leads take 11 minutes).
MARKETO_CALLS_PER_20S = 100
MARKETO_WINDOWS_PER_EXPORT = 5
MARKETO_CONCURRENCY = 10
MARKETO_LATENCY = 0.1

# Marketo bulk import: each job spends at least one step queued and one importing, and
# at most `bulk_max_importing` import at once (Marketo's documented 2). Real imports of a
# 10 MB file take minutes; 20 s per step makes a 1M export (4 files) take >= 60 s.
MARKETO_BULK_STEP_SECONDS = 20.0
MARKETO_BULK_MAX_IMPORTING = 2
MARKETO_BULK_THRESHOLD = 50_000
# A threshold no bench run reaches (the largest the options allow).
NEVER_THRESHOLD = 100_000_000

# SFMC rowset: 50 rows per request (SFMC's best practice, enforced by the connector) at
# 120 requests per second (SFMC publishes no per-second limit; this one makes a 1M export
# take under 3 minutes), 8 concurrent requests of 25 ms: capacity 320 requests/s. At 160
# requests/s this machine's two cores, shared by the emulator, PostgreSQL and us, were the
# limit (see docs/benchmarks.md, round 3).
SFMC_ROWSET_RPS = 120
SFMC_CONCURRENCY = 8
SFMC_ROWSET_LATENCY = 0.025

# SFMC async upsert: slow per request, fast per row. A job is one submit plus one status
# read (no results read when every row is OK), each taking SFMC_ASYNC_LATENCY, up to
# SFMC_ASYNC_CONCURRENCY requests at a time; requests_per_second never binds. Other calls
# (token, schema) take SFMC_ROWSET_LATENCY.
SFMC_ASYNC_LATENCY = 2.0
SFMC_ASYNC_RPS = 50
SFMC_ASYNC_CONCURRENCY = 2

PATH_NAMES = ("marketo_sync", "marketo_bulk", "sfmc_rowset", "sfmc_async")
BENCH_FIELD = [{"name": "cohortBench", "displayName": "Bench Cohort", "dataType": "boolean"}]


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
        return users / _BEST_SECONDS[self.name](self, users, bulk_row_bytes)


def best_seconds(*, calls: int, window_calls: int, window_seconds: float, concurrency: int, latency: float) -> float:
    """The shortest time `calls` requests can take: each starts as soon as a concurrency
    slot is free and the sliding window (at most `window_calls` starts per
    `window_seconds`) allows, and takes `latency` (the mean) to answer."""
    if calls <= 0:
        return 0.0
    slots = [0.0] * concurrency
    starts: list[float] = []
    for i in range(calls):
        start = heapq.heappop(slots)
        if i >= window_calls:
            start = max(start, starts[i - window_calls] + window_seconds)
        starts.append(start)
        heapq.heappush(slots, start + latency)
    return max(slots)


def marketo_calls_per_20s(profiles: int) -> int:
    calls = math.ceil(profiles / MARKETO_SYNC_BATCH)
    return max(MARKETO_CALLS_PER_20S, math.ceil(calls / MARKETO_WINDOWS_PER_EXPORT))


def path_spec(name: str, *, profiles: int) -> PathSpec:
    """The limits of path `name` for a suite of `profiles` profiles."""
    if name in ("marketo_sync", "marketo_bulk"):
        return _marketo(name, profiles)
    if name in ("sfmc_rowset", "sfmc_async"):
        return _sfmc(name)
    raise KeyError(name)


def _marketo(name: str, profiles: int) -> PathSpec:
    bulk = name == "marketo_bulk"
    # `bulk_threshold` at its maximum: the sync path measures the sync endpoint at every size;
    # the bulk path keeps the default, so full exports go bulk and a 1 % churn goes sync.
    threshold = MARKETO_BULK_THRESHOLD if bulk else NEVER_THRESHOLD
    limits = {"calls_per_20s": marketo_calls_per_20s(profiles), "max_concurrency": MARKETO_CONCURRENCY}
    emulator = {
        **limits, "daily_quota": 10**9, "max_batch_size": MARKETO_SYNC_BATCH,
        "latency": MARKETO_LATENCY, "latency_jitter": LATENCY_JITTER, "fields": BENCH_FIELD,
    }
    if bulk:
        emulator |= {
            "max_bulk_bytes": MARKETO_BULK_BYTES, "bulk_queue_limit": 10,
            "bulk_max_importing": MARKETO_BULK_MAX_IMPORTING, "bulk_step_seconds": MARKETO_BULK_STEP_SECONDS,
        }
    return PathSpec(
        name=name,
        kind="marketo",
        title="Marketo, bulk import (above bulk_threshold)" if bulk else "Marketo, sync endpoint (300 leads per call)",
        identity_property="$email",
        target_field="cohortBench",
        destination_options={**limits, "batch_size": MARKETO_SYNC_BATCH, "bulk_threshold": threshold},
        emulator_prefix="marketo",
        emulator_config=emulator,
        notes=f"Steps below bulk_threshold ({threshold:,} changes) use the sync endpoint, as in production."
        if bulk else "",
        extra={"bulk_threshold": threshold},
    )


def _sfmc(name: str) -> PathSpec:
    rowset = name == "sfmc_rowset"
    if rowset:
        # async_threshold at its maximum: the rowset endpoint at every size.
        rps, concurrency, latency, jitter = SFMC_ROWSET_RPS, SFMC_CONCURRENCY, SFMC_ROWSET_LATENCY, LATENCY_JITTER
        options = {"rowset_batch_size": SFMC_ROWSET_BATCH, "async_threshold": NEVER_THRESHOLD}
        extra_config: dict[str, Any] = {}
    else:
        # async_threshold 0: every step async, churn included.
        rps, concurrency, latency, jitter = SFMC_ASYNC_RPS, SFMC_ASYNC_CONCURRENCY, SFMC_ROWSET_LATENCY, 0.0
        options = {"async_batch_size": SFMC_ASYNC_BATCH, "async_threshold": 0}
        extra_config = {"async_latency_seconds": SFMC_ASYNC_LATENCY, "async_not_found_polls": 0,
                        "async_pending_polls": 0, "async_max_items": SFMC_ASYNC_BATCH, "results_page_size": 2500}
    return PathSpec(
        name=name,
        kind="sfmc_data_extension",
        title="SFMC data extension, rowset (50 rows per request)" if rowset
        else "SFMC data extension, async upsert (32,000 rows per request)",
        identity_property="$distinct_id",
        target_field="Bench_Cohort",
        destination_options={"requests_per_second": rps, "max_concurrency": concurrency, **options},
        emulator_prefix="sfmc",
        emulator_config={
            "requests_per_second": rps, "max_concurrent_requests": concurrency,
            "latency_seconds": latency, "latency_jitter": jitter, **extra_config,
        },
    )


# --- bounds ---------------------------------------------------------------------------------


def _marketo_sync_seconds(spec: PathSpec, users: int, row_bytes: float) -> float:
    config = spec.emulator_config
    return best_seconds(
        calls=math.ceil(users / MARKETO_SYNC_BATCH), window_calls=int(config["calls_per_20s"]),
        window_seconds=20.0, concurrency=int(config["max_concurrency"]), latency=float(config["latency"]),
    )


def _marketo_bulk_seconds(spec: PathSpec, users: int, row_bytes: float) -> float:
    if users <= int(spec.extra["bulk_threshold"]):
        return _marketo_sync_seconds(spec, users, row_bytes)
    config = spec.emulator_config
    rows_per_file = max(1, int(config["max_bulk_bytes"] // max(row_bytes, 1.0)))
    files = math.ceil(users / rows_per_file)
    step = float(config["bulk_step_seconds"])
    # One step queued, then the files import `bulk_max_importing` at a time, one step each.
    return step * (1 + math.ceil(files / int(config["bulk_max_importing"])))


def _sfmc_rowset_seconds(spec: PathSpec, users: int, row_bytes: float) -> float:
    config = spec.emulator_config
    return best_seconds(
        calls=math.ceil(users / SFMC_ROWSET_BATCH), window_calls=int(config["requests_per_second"]),
        window_seconds=1.0, concurrency=int(config["max_concurrent_requests"]),
        latency=float(config["latency_seconds"]),
    )


def _sfmc_async_seconds(spec: PathSpec, users: int, row_bytes: float) -> float:
    config = spec.emulator_config
    jobs = math.ceil(users / SFMC_ASYNC_BATCH)
    requests_per_job = 2 + int(config["async_not_found_polls"]) + int(config["async_pending_polls"])
    latency = float(config["async_latency_seconds"])
    concurrency = int(config["max_concurrent_requests"])
    by_rate = jobs * requests_per_job / float(config["requests_per_second"])
    # Requests of one job are sequential; `concurrency` jobs proceed at once.
    by_latency = math.ceil(jobs / concurrency) * requests_per_job * latency
    return max(by_rate, by_latency)


_BEST_SECONDS = {
    "marketo_sync": _marketo_sync_seconds,
    "marketo_bulk": _marketo_bulk_seconds,
    "sfmc_rowset": _sfmc_rowset_seconds,
    "sfmc_async": _sfmc_async_seconds,
}
