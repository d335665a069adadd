"""Where account budgets live (destinations.budget): in memory (one process, or a test's own
clock), in the database (every process on the database) or in Redis (every process on the
Redis server).

Every store decides a request start atomically for one account: the daily count, the
leases of requests in flight and the request window, taken together or not at all. A store
never sleeps; it says when the request may go, or how long to wait.

- Memory: a lock and a dict.
- Database: one ApiBudget row per account, locked (SELECT ... FOR UPDATE on PostgreSQL; the
  IMMEDIATE transaction on SQLite) for the one short transaction a start takes, on one
  connection per process (_DatabaseThread).
- Redis: the window is `limits`' moving-window script (maintained upstream), fed
  millisecond timestamps so windows need not be whole seconds (SFMC's paced 51 ms); the
  leases and the daily count, which `limits` has no structure for, are one small script
  of our own (LEASE_SCRIPT). A start is one round trip for the leases and daily count and
  one for the window. `limits` counts only starts that happened, so Redis does not
  reserve: a start that finds the window full keeps its lease and day's unit (`holding`)
  and asks again once the window says it has room. Nor can it give a missed start back
  (`replaces`): it stays counted, which errs on the safe side.

Memory and database *reserve*: when the window is full, a start is given the next free
moment in it (Verdict.at) and the caller sleeps until then, so a start costs one decision
however busy the account is. Asking again after a wait instead costs a locked transaction
per attempt, and busy SFMC accounts (paced, thousands of starts a minute) then spend their
time queueing on the row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.db import IntegrityError, connections, transaction
from django.db.models.expressions import RawSQL

logger = logging.getLogger(__name__)

_LEASE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# How long a day's count is kept after its last call (Redis), so a late reader still finds it.
DAY_KEY_SECONDS = 3 * 24 * 3600


@dataclass(frozen=True)
class Window:
    """At most `calls` request starts in any `seconds` (the margin already added)."""

    calls: int
    seconds: float


@dataclass(frozen=True)
class StartRequest:
    """One attempt to start a request on `key`'s budget.

    `holding`: the lease and the day's unit were taken by an earlier attempt of this start,
    which then waited for the window: only the window is left to take."""

    key: str
    now: float  # seconds since the epoch (or the test clock's)
    window: Window
    max_concurrency: int
    lease_id: str
    lease_until: float
    daily_quota: int | None = None
    day: str = ""
    holding: bool = False
    # A reserving store refuses (without taking anything) a moment further than this many
    # seconds away: a person waiting for an answer can wait only so long (max_wait).
    reserve_within: float | None = None
    # A reserving store's moment this start was given and missed (its thread woke too late
    # to send then): given back as the new one is reserved. Comes with `holding`.
    replaces: float | None = None
    # When given, the store reads the time itself right before deciding (once the account's
    # row is locked), and `now` / `lease_until` move with it: a start recorded earlier than
    # the request is sent lets the call one window later reach the platform too early.
    clock: Callable[[], float] | None = None

    def stamped(self) -> StartRequest:
        if self.clock is None:
            return self
        now = self.clock()
        return dataclasses.replace(self, now=now, lease_until=self.lease_until + (now - self.now), clock=None)


@dataclass(frozen=True)
class Verdict:
    """What a store decided: started (the request may be sent at `at`, a moment the store
    reserved for it), or how long to wait (`holding` says what was kept), or the day's quota
    is used up (`day_calls` counted so far)."""

    started: bool
    at: float = 0.0
    wait: float = 0.0
    holding: bool = False
    quota_reached: bool = False
    day_calls: int = 0


class BudgetStore(Protocol):
    def start(self, request: StartRequest) -> Verdict: ...

    def finish(self, key: str, lease_id: str) -> None: ...

    def renew(self, key: str, lease_ids: list[str], until: float) -> None: ...

    def day_calls(self, key: str, day: str) -> int: ...


def _decide(state: _State, request: StartRequest) -> Verdict:
    """The one decision every store without scripts makes, on an account's state: the day's
    unit, a place in flight and the first moment the window has room for, all reserved
    together."""
    request = request.stamped()
    now = request.now
    if not request.holding:
        if request.daily_quota is not None:
            if state.day != request.day:
                state.day, state.day_calls = request.day, 0
            if state.day_calls >= request.daily_quota:
                return Verdict(started=False, quota_reached=True, day_calls=state.day_calls)
        state.leases = {lease: until for lease, until in state.leases.items() if until > now}
        if len(state.leases) >= request.max_concurrency:
            return Verdict(started=False, wait=_concurrency_wait(state.leases, now))
    window = request.window
    # Reserved moments still to come stay; they are the newest.
    starts = [start for start in state.starts if now - start < window.seconds]
    if request.replaces is not None and request.replaces in starts:
        starts.remove(request.replaces)
    at = now
    if starts:
        # After every reservation (the list stays in order), and one window after the start
        # `calls` back, so no window ever holds more than `calls`.
        at = max(at, starts[-1])
        if len(starts) >= window.calls:
            at = max(at, starts[-window.calls] + window.seconds)
    if request.reserve_within is not None and at - now > request.reserve_within:
        return Verdict(started=False, wait=at - now)
    starts.append(at)
    state.starts = starts
    if not request.holding:
        state.leases[request.lease_id] = request.lease_until + (at - now)
        if request.daily_quota is not None:
            state.day_calls += 1
    return Verdict(started=True, at=at, day_calls=state.day_calls)


# A request in flight ends when its answer comes; nobody tells other processes when. They
# look again this often (less than a typical call, more than a round trip).
CONCURRENCY_POLL_SECONDS = 0.02


def _concurrency_wait(leases: dict[str, float], now: float) -> float:
    return min(CONCURRENCY_POLL_SECONDS, max(min(leases.values()) - now, 0.001))


@dataclass
class _State:
    starts: list[float] = field(default_factory=list)
    leases: dict[str, float] = field(default_factory=dict)
    day: str = ""
    day_calls: int = 0


class MemoryBudgetStore:
    """Budgets of one process (tests, or a test's own clock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, _State] = {}

    def start(self, request: StartRequest) -> Verdict:
        with self._lock:
            return _decide(self._states.setdefault(request.key, _State()), request)

    def finish(self, key: str, lease_id: str) -> None:
        with self._lock:
            state = self._states.get(key)
            if state is not None:
                state.leases.pop(lease_id, None)

    def renew(self, key: str, lease_ids: list[str], until: float) -> None:
        with self._lock:
            state = self._states.get(key)
            for lease_id in lease_ids if state is not None else ():
                if lease_id in state.leases:
                    state.leases[lease_id] = until

    def day_calls(self, key: str, day: str) -> int:
        with self._lock:
            state = self._states.get(key)
            return state.day_calls if state is not None and state.day == day else 0

    def day_set(self, key: str, day: str) -> None:
        """Tests: move the account's quota day (as if the day had changed since)."""
        with self._lock:
            self._states.setdefault(key, _State()).day = day

    def clear(self) -> None:
        with self._lock:
            self._states.clear()


class _DatabaseThread:
    """The one thread of a process that runs the database store's statements, on its own
    connection: a process holds one connection for its budgets however many threads send
    requests (a run has twice its concurrency in threads, each with its own connection
    otherwise), and a start commits at once even when the caller is inside a transaction
    (which would keep the account's row locked until the caller commits)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._pid = 0

    def _current(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None or self._pid != os.getpid():  # none yet, or forked
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-budget-db")
                self._pid = os.getpid()
            return self._executor

    def run(self, operation: Callable[[], Any], *, using: str) -> Any:
        return self._current().submit(self._guarded, operation, using).result()

    def post(self, operation: Callable[[], Any], *, using: str) -> None:
        """Run `operation` after what is queued, without waiting for it (its failure is logged)."""
        self._current().submit(self._logged, operation, using)

    @classmethod
    def _logged(cls, operation: Callable[[], Any], using: str) -> None:
        try:
            cls._guarded(operation, using)
        except Exception:
            logger.warning("An API budget write failed; the leases it gave back expire on their own",
                           exc_info=True)

    @staticmethod
    def _guarded(operation: Callable[[], Any], using: str) -> Any:
        try:
            _commits_unawaited(using)
            return operation()
        except Exception:
            # A broken connection (the server restarted) is replaced on the next call.
            connections[using].close_if_unusable_or_obsolete()
            raise

    def close(self) -> None:
        """Close the thread's connection (tests, before their database is dropped)."""
        with self._lock:
            executor = self._executor if self._pid == os.getpid() else None
        if executor is not None:
            executor.submit(connections.close_all).result()


database_thread = _DatabaseThread()
_budget_thread = threading.local()


def _commits_unawaited(using: str) -> None:
    """On the budget thread's own PostgreSQL connection, commits do not wait for the disk
    (synchronous_commit off, that session only): waiting for the WAL flush was most of a
    start's database time, thousands of times a minute on a busy SFMC account, and what a
    database crash can lose is the last fraction of a second of starts and leases, which
    the window's next seconds and the leases' expiry make good. SQLite's commits already
    don't wait (WAL with synchronous=NORMAL, settings.DATABASES)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return
    connection.ensure_connection()
    relaxed = getattr(_budget_thread, "relaxed", {})
    if relaxed.get(using) is connection.connection:
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    _budget_thread.relaxed = {**relaxed, using: connection.connection}


class DatabaseBudgetStore:
    """Budgets in the ApiBudget table: shared by every process on the database.

    A start is one short transaction: the account's row is locked, decided on and written
    back, in plain SQL (a paced SFMC account takes thousands a minute, and the ORM's
    objects cost more than the statements). Both run on the process's budget thread
    (_DatabaseThread), except when the caller holds a SQLite write transaction: that thread
    would wait for it, so they run in the caller's transaction (a savepoint).

    A finish does not wait: the lease is given back by the account's next start in this
    process (in the transaction it takes anyway), or by one statement the budget thread
    runs once the starts queued before it are done, whichever comes first."""

    def __init__(self, *, using: str = "default") -> None:
        self.using = using
        self._finished_lock = threading.Lock()
        self._finished: dict[str, set[str]] = {}  # account key -> leases given back, not yet written

    def _inline(self) -> bool:
        caller = connections[self.using]
        return caller.vendor == "sqlite" and caller.in_atomic_block

    def _run(self, operation: Callable[[], Any]) -> Any:
        if self._inline():
            return operation()
        return database_thread.run(operation, using=self.using)

    def start(self, request: StartRequest) -> Verdict:
        return self._run(lambda: self._start(request))

    def finish(self, key: str, lease_id: str) -> None:
        if not _LEASE_ID.fullmatch(lease_id):
            raise ValueError(f"Not a lease id: {lease_id!r}")
        if self._inline():
            self._remove_leases(key, [lease_id])
            return
        with self._finished_lock:
            self._finished.setdefault(key, set()).add(lease_id)
        database_thread.post(lambda: self._write_finished(key), using=self.using)

    def settle(self) -> None:
        """Wait until every lease given back so far is written (tests read the rows)."""
        self._run(lambda: None)

    def renew(self, key: str, lease_ids: list[str], until: float) -> None:
        self._run(lambda: self._renew(key, lease_ids, until))

    def _take_finished(self, key: str) -> set[str]:
        with self._finished_lock:
            return self._finished.pop(key, set())

    def _give_back_finished(self, key: str, lease_ids: set[str]) -> None:
        if lease_ids:
            with self._finished_lock:
                self._finished.setdefault(key, set()).update(lease_ids)

    def _write_finished(self, key: str) -> None:
        finished = self._take_finished(key)
        if not finished:
            return  # a start took them
        try:
            self._remove_leases(key, sorted(finished))
        except BaseException:
            self._give_back_finished(key, finished)
            raise

    def _start(self, request: StartRequest) -> Verdict:
        finished = self._take_finished(request.key)
        try:
            with transaction.atomic(using=self.using), connections[self.using].cursor() as cursor:
                state = self._locked_state(cursor, request.key)
                for lease_id in finished:
                    state.leases.pop(lease_id, None)
                verdict = _decide(state, request)
                self._write_state(cursor, request.key, state)
        except BaseException:
            self._give_back_finished(request.key, finished)
            raise
        return verdict

    def _remove_leases(self, key: str, lease_ids: list[str]) -> None:
        # One statement, no transaction of its own: the leases are removed from the JSON in
        # the database (lease ids are letters and digits, safe in a JSON path).
        from destinations.models import ApiBudget

        connection = connections[self.using]
        if connection.vendor == "postgresql":
            removed = RawSQL("leases - %s::text[]", (list(lease_ids),))
        else:
            paths = ", ".join(["%s"] * len(lease_ids))
            removed = RawSQL(f"json_remove(leases, {paths})", tuple(f'$."{lease_id}"' for lease_id in lease_ids))
        ApiBudget.objects.using(self.using).filter(account_key=key).update(leases=removed)

    def _renew(self, key: str, lease_ids: list[str], until: float) -> None:
        with transaction.atomic(using=self.using), connections[self.using].cursor() as cursor:
            state = self._locked_state(cursor, key)
            renewed = [lease_id for lease_id in lease_ids if lease_id in state.leases]
            if renewed:
                state.leases.update(dict.fromkeys(renewed, until))
                self._write_state(cursor, key, state)

    def day_calls(self, key: str, day: str) -> int:
        from destinations.models import ApiBudget

        row = ApiBudget.objects.using(self.using).filter(account_key=key).values("day", "day_calls").first()
        return int(row["day_calls"]) if row is not None and row["day"] == day else 0

    def _table(self) -> str:
        from destinations.models import ApiBudget

        return connections[self.using].ops.quote_name(ApiBudget._meta.db_table)

    def _locked_state(self, cursor: Any, key: str) -> _State:
        """The account's row, locked until the transaction ends (created when missing)."""
        lock = " FOR UPDATE" if connections[self.using].features.has_select_for_update else ""
        select = f"SELECT starts, leases, day, day_calls FROM {self._table()} WHERE account_key = %s{lock}"
        cursor.execute(select, [key])
        row = cursor.fetchone()
        if row is None:
            from destinations.models import ApiBudget

            try:
                with transaction.atomic(using=self.using):
                    ApiBudget.objects.using(self.using).create(account_key=key)
            except IntegrityError:
                pass  # another process created it first
            cursor.execute(select, [key])
            row = cursor.fetchone()
        starts, leases, day, day_calls = row
        return _State(starts=_json(starts), leases=_json(leases), day=day, day_calls=int(day_calls))

    def _write_state(self, cursor: Any, key: str, state: _State) -> None:
        cast = "::jsonb" if connections[self.using].vendor == "postgresql" else ""
        cursor.execute(
            f"UPDATE {self._table()} SET starts = %s{cast}, leases = %s{cast}, day = %s, day_calls = %s, "
            "updated_at = %s WHERE account_key = %s",
            [json.dumps(state.starts), json.dumps(state.leases), state.day, state.day_calls,
             connections[self.using].ops.adapt_datetimefield_value(utc_now()), key],
        )


def _json(value: Any) -> Any:
    """A JSON column as read by a plain cursor: text (SQLite; PostgreSQL through Django's
    loader) or already decoded."""
    return json.loads(value) if isinstance(value, str | bytes) else value


LEASE_SCRIPT = """
-- KEYS[1]: the account's leases (a sorted set: lease id -> expiry); KEYS[2]: the day's count.
-- ARGV: now, lease id, lease expiry, max concurrency, daily quota (-1: none), day key ttl.
-- Returns {1, count} when the lease (and the day's unit) is taken, {0, 0} when every place
-- is in flight, {-1, count} when the day's quota is used up.
local now = tonumber(ARGV[1])
local quota = tonumber(ARGV[5])
local used = 0
if quota >= 0 then
    used = tonumber(redis.call('get', KEYS[2]) or '0')
    if used >= quota then
        return {-1, used}
    end
end
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
if redis.call('zcard', KEYS[1]) >= tonumber(ARGV[4]) then
    return {0, 0}
end
redis.call('zadd', KEYS[1], tonumber(ARGV[3]), ARGV[2])
redis.call('expire', KEYS[1], math.max(1, math.ceil(tonumber(ARGV[3]) - now)))
if quota >= 0 then
    used = redis.call('incr', KEYS[2])
    redis.call('expire', KEYS[2], tonumber(ARGV[6]))
end
return {1, used}
"""


class RedisBudgetStore:
    """Budgets in Redis: shared by every process on the Redis server."""

    def __init__(self, url: str, *, prefix: str) -> None:
        from limits.storage import RedisStorage

        self.prefix = prefix
        self._limits = RedisStorage(url, key_prefix=f"{prefix}:window")
        self._redis = self._limits.get_connection()
        self._lease_script = self._redis.register_script(LEASE_SCRIPT)

    def _key(self, kind: str, key: str) -> str:
        return f"{self.prefix}:{kind}:{key}"

    def start(self, request: StartRequest) -> Verdict:
        request = request.stamped()
        if not request.holding:
            taken, day_calls = self._lease_script(
                keys=[self._key("leases", request.key), self._key("day", f"{request.key}:{request.day}")],
                args=[request.now, request.lease_id, request.lease_until, request.max_concurrency,
                      -1 if request.daily_quota is None else request.daily_quota, DAY_KEY_SECONDS],
            )
            if int(taken) < 0:
                return Verdict(started=False, quota_reached=True, day_calls=int(day_calls))
            if int(taken) == 0:
                return Verdict(started=False, wait=CONCURRENCY_POLL_SECONDS)
        # limits' moving window in milliseconds: its script compares the numbers it is given
        # and only uses the expiry (then in thousands of seconds) for the key's lifetime.
        window_key = self._limits.prefixed_key(request.key)
        now_ms = request.now * 1000.0
        expiry_ms = math.ceil(request.window.seconds * 1000.0)
        if self._limits.lua_acquire_moving_window([window_key], [now_ms, request.window.calls, expiry_ms, 1]):
            return Verdict(started=True, at=request.now)
        window = self._limits.lua_moving_window([window_key], [now_ms - expiry_ms, request.window.calls])
        full = bool(window) and int(window[1]) >= request.window.calls
        wait = (float(window[0]) + expiry_ms - now_ms) / 1000.0 if full else 0.001
        return Verdict(started=False, wait=max(wait, 0.001), holding=True)

    def finish(self, key: str, lease_id: str) -> None:
        self._redis.zrem(self._key("leases", key), lease_id)

    def renew(self, key: str, lease_ids: list[str], until: float) -> None:
        leases = self._key("leases", key)
        with self._redis.pipeline() as pipe:
            pipe.zadd(leases, dict.fromkeys(lease_ids, until), xx=True)
            pipe.expire(leases, max(1, math.ceil(until - time.time())))
            pipe.execute()

    def day_calls(self, key: str, day: str) -> int:
        return int(self._redis.get(self._key("day", f"{key}:{day}")) or 0)

    def clear(self) -> None:
        """Tests: remove every key of this store's prefix."""
        for name in self._redis.scan_iter(match=f"{self.prefix}:*", count=1000):
            self._redis.delete(name)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
