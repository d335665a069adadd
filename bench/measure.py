"""What one step costs this process: wall time, peak resident memory over a baseline
taken right before the step, and SQL statements sent."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import connection

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(key: str) -> int:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mib() -> float:
    return _status_kib("VmRSS") / 1024


def peak_mib() -> float:
    return _status_kib("VmHWM") / 1024


def peak_reset() -> bool:
    """Reset the kernel's high-water mark to the current RSS (Linux: "5" > clear_refs)."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


@dataclass
class QueryCounter:
    count: int = 0

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


@dataclass
class Measured:
    seconds: float = 0.0
    baseline_mib: float = 0.0
    peak_mib: float = 0.0
    queries: int = 0
    peak_reset: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def peak_over_baseline_mib(self) -> float:
        return max(0.0, self.peak_mib - self.baseline_mib)


@contextmanager
def measured() -> Iterator[Measured]:
    """Measure the block: the SQL counter covers this thread's connection (the engine
    keeps every database write in the main thread)."""
    result = Measured()
    counter = QueryCounter()
    result.peak_reset = peak_reset()
    result.baseline_mib = rss_mib()
    started = time.perf_counter()
    with connection.execute_wrapper(counter):
        try:
            yield result
        finally:
            result.seconds = time.perf_counter() - started
            result.queries = counter.count
            result.peak_mib = peak_mib()


@contextmanager
def timed(into: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        into[name] = into.get(name, 0.0) + time.perf_counter() - started
