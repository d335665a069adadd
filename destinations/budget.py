"""One API budget per destination account, shared by every thread, process and host.

A platform limits requests per *account*, not per integration or per worker: Marketo allows
an instance 100 calls in 20 seconds, 10 at once and 50,000 a day, shared by every
integration; SFMC throttles per tenant. Every data and bulk request of a client therefore
starts through its account's `AccountBudget` (destinations.http.HttpTransport asks it):

- request starts per window (Marketo calls_per_20s; SFMC requests_per_second, paced), the
  window kept rate_window_margin longer than the platform's;
- requests in flight (max_concurrency), as leases that expire, so a killed worker cannot
  keep its places;
- calls per quota day (Marketo daily_call_quota, days in America/Chicago): the day's unit is
  taken before the request is sent, so a run stops (QuotaExhaustedError) before the call
  that would cross the quota instead of after Marketo's 607.

The budget lives in Redis when REDIS_URL is set and in the database otherwise
(destinations.budget_stores; COHORTSYNC_API_BUDGET_STORE chooses explicitly). The key is
destinations.accounts.destination_account_key: every record pointing at one account draws
on one budget, and the smaller value of each budget option among them applies to all
(account_budget_options, applied when a connector's config is made).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from destinations.budget_stores import (
    BudgetStore,
    DatabaseBudgetStore,
    MemoryBudgetStore,
    RedisBudgetStore,
    StartRequest,
    Window,
    utc_now,
)
from destinations.errors import QuotaExhaustedError, TransientError
from destinations.kindspec import KindOptions, QuotaDay

logger = logging.getLogger(__name__)

STORES = ("database", "redis", "memory")
# A request's place in flight is a lease of this long, renewed every LEASE_RENEW_SECONDS while
# the request lasts: a worker killed mid-request (SIGKILL, a lost host) stops renewing, and
# its places come back within this long.
LEASE_SECONDS = 30.0
LEASE_RENEW_SECONDS = 10.0
# The longest a start waiting for a place in flight sleeps before it looks again.
CONCURRENCY_POLL_MAX_SECONDS = 0.2


def rate_window_margin(period: float) -> float:
    """How much longer than the destination's window ours is kept (10 ms + 1 %: 20 ms of a
    1-second window, 210 ms of Marketo's 20 seconds). The destination counts a request when
    it arrives, not when we sent it: a request sent exactly one window after another can
    arrive a little sooner relative to it, when the first one waited in a busy server's
    queue, and be refused; a refusal costs far more (Retry-After, Marketo's 20 s) than the
    margin."""
    return 0.01 + 0.01 * period


@dataclass(frozen=True)
class BudgetLimits:
    """What one account allows: `window_calls` request starts in any `window_seconds`,
    `max_concurrency` requests at once, and `daily_quota` calls a quota day (None: no daily
    quota). `paced` spaces starts evenly instead of letting a window's calls go at once: a
    burst makes a busy server count its first requests late and the next window's early."""

    window_calls: int
    window_seconds: float
    max_concurrency: int
    daily_quota: int | None = None
    paced: bool = False

    def __post_init__(self) -> None:
        if self.window_calls < 1 or self.window_seconds <= 0 or self.max_concurrency < 1:
            raise ValueError("A budget needs window_calls >= 1, window_seconds > 0 and max_concurrency >= 1.")
        if self.daily_quota is not None and self.daily_quota < 1:
            raise ValueError("A daily quota must be at least 1.")

    @property
    def window(self) -> Window:
        """The moving window the stores keep, rate_window_margin longer than the platform's.
        Paced, it is one start per (window + twice the margin) / calls: starts that far apart
        can never put more than window_calls in any window + margin. Twice, because a busy
        paced account runs at exactly its limit (each start reserved one spacing after the
        last, destinations.budget_stores), leaving no gap but the margin for a request that
        reaches the platform late; a window that lets its calls go at once has its idle rest."""
        margin = rate_window_margin(self.window_seconds)
        if self.paced:
            return Window(1, (self.window_seconds + 2 * margin) / self.window_calls)
        return Window(self.window_calls, self.window_seconds + margin)


class DailyQuotaReached(QuotaExhaustedError):
    """The account's calls for the quota day are used up: nothing was sent. Clients re-raise
    it with their platform's words."""

    def __init__(self, *, quota: int, used: int, resets_at: dt.datetime) -> None:
        super().__init__(
            f"The account's daily quota of {quota} API calls is used up ({used} counted today); "
            f"nothing more is sent until it resets at {resets_at:%Y-%m-%d %H:%M} UTC.",
            resumes_at=resets_at.isoformat(),
        )
        self.quota = quota
        self.used = used
        self.resets_at = resets_at


class BudgetBusyError(TransientError):
    """A person waits for a call (interactive_calls) and the account's budget is in use by
    running syncs for longer than they can wait."""

    default_code = "budget_busy"


class AccountBudget:
    """One account's budget, as a client in one process draws on it (thread-safe)."""

    def __init__(
        self,
        *,
        key: str,
        limits: BudgetLimits,
        store: BudgetStore,
        quota_day: Callable[[dt.datetime], QuotaDay] | None = None,
        now: Callable[[], dt.datetime] = utc_now,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        if limits.daily_quota is not None and quota_day is None:
            raise ValueError("A daily quota needs the platform's quota day.")
        self.key = key
        self.limits = limits
        self.store = store
        self._quota_day = quota_day
        self._now = now
        self._clock = clock
        self._sleep = sleep
        self.lease_seconds = lease_seconds
        self._window = limits.window
        # A start whose thread wakes later than this after its reserved moment takes a new
        # one: sent that late, it could share a platform window with the calls reserved after
        # it. Half the window's margin, the other half being for the way to the platform.
        self._late = rate_window_margin(limits.window_seconds) / 2

    def start(self, *, max_wait: float | None = None) -> str:
        """Wait for a place in flight and in the window, take the quota day's unit, and
        return the lease to hand to finish() once the answer is in. DailyQuotaReached when
        the day's calls are used up; BudgetBusyError when it would wait longer than
        `max_wait` seconds."""
        day = self._quota_day(self._now()) if self.limits.daily_quota is not None and self._quota_day else None
        lease_id = uuid.uuid4().hex
        try:
            return self._start(lease_id, day, max_wait)
        except BaseException:
            if lease_id in _keeper:
                self.finish(lease_id)  # a lease taken while waiting for the window is given back
            raise

    def _start(self, lease_id: str, day: QuotaDay | None, max_wait: float | None) -> str:
        holding = False
        missed: float | None = None
        waited = 0.0
        polls = 0
        while True:
            now = self._clock()
            verdict = self.store.start(StartRequest(
                key=self.key, now=now, window=self._window, max_concurrency=self.limits.max_concurrency,
                lease_id=lease_id, lease_until=now + self.lease_seconds, daily_quota=self.limits.daily_quota,
                day=day.day if day is not None else "", holding=holding, clock=self._clock,
                reserve_within=None if max_wait is None else max_wait - waited, replaces=missed,
            ))
            if verdict.started:
                if not holding:
                    _keeper.track(self, lease_id)
                # The moment the store reserved for this request (now, unless the window
                # was full): sending sooner would put one call too many in some window.
                while (early := verdict.at - self._clock()) > 0:
                    self._sleep(early)
                if self._clock() - verdict.at <= self._late:
                    return lease_id
                holding, missed = True, verdict.at  # woke too late: trade it for a new moment
                continue
            if verdict.quota_reached:
                assert day is not None and self.limits.daily_quota is not None
                raise DailyQuotaReached(quota=self.limits.daily_quota, used=verdict.day_calls, resets_at=day.resets_at)
            if verdict.holding and not holding:
                _keeper.track(self, lease_id)  # held while waiting for the window
            holding = verdict.holding
            wait = verdict.wait
            if not holding:
                # Every place is in flight: nobody says when one comes back, so look again,
                # less often the longer it takes (a few database transactions a second).
                polls += 1
                wait = min(wait * 1.5 ** polls, CONCURRENCY_POLL_MAX_SECONDS) * random.uniform(0.8, 1.2)
            # verdict.wait too: a reserving store refuses a moment further than max_wait away.
            if max_wait is not None and waited + max(wait, verdict.wait) > max_wait:
                raise BudgetBusyError(
                    "The destination account's API budget (calls per window and at once) is in "
                    "use by running syncs; try again in a minute.", code="budget_busy",
                )
            self._sleep(wait)
            waited += wait

    def finish(self, lease_id: str) -> None:
        """The request's answer is in: give its place in flight back."""
        _keeper.untrack(lease_id)
        try:
            self.store.finish(self.key, lease_id)
        except Exception:  # the lease expires on its own; the answer matters more
            logger.warning("Could not return a request's place in the API budget of %s; it expires "
                           "in %.0fs", self.key, self.lease_seconds, exc_info=True)


class _LeaseKeeper:
    """Renews the leases of this process's requests in flight (a thread of its own while
    there are any), so a lease can be short and still outlast a slow request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leases: dict[str, AccountBudget] = {}
        self._thread: threading.Thread | None = None

    def track(self, budget: AccountBudget, lease_id: str) -> None:
        with self._lock:
            self._leases[lease_id] = budget
            if self._thread is None or not self._thread.is_alive():  # none yet, or forked
                self._thread = threading.Thread(target=self._run, name="api-budget-leases", daemon=True)
                self._thread.start()

    def __contains__(self, lease_id: str) -> bool:
        with self._lock:
            return lease_id in self._leases

    def untrack(self, lease_id: str) -> None:
        with self._lock:
            self._leases.pop(lease_id, None)

    def _run(self) -> None:
        while True:
            time.sleep(LEASE_RENEW_SECONDS)
            with self._lock:
                if not self._leases:
                    self._thread = None
                    return
            self.renew_now()

    def renew_now(self) -> None:
        """Renew every tracked lease once (the thread's pass)."""
        by_budget: dict[int, tuple[AccountBudget, list[str]]] = {}
        with self._lock:
            for lease_id, budget in self._leases.items():
                by_budget.setdefault(id(budget), (budget, []))[1].append(lease_id)
        for budget, lease_ids in by_budget.values():
            try:
                budget.store.renew(budget.key, lease_ids, budget._clock() + budget.lease_seconds)
            except Exception:
                logger.warning("Could not renew requests' places in the API budget of %s", budget.key,
                               exc_info=True)


_keeper = _LeaseKeeper()


# --- the configured store ------------------------------------------------------------------

_memory_store = MemoryBudgetStore()
_stores: dict[tuple[str, ...], BudgetStore] = {}
_stores_lock = threading.Lock()


def budget_store_name() -> str:
    """'redis', 'database' or 'memory': COHORTSYNC_API_BUDGET_STORE, or Redis when REDIS_URL
    is set and the database otherwise."""
    name = getattr(settings, "COHORTSYNC_API_BUDGET_STORE", "") or ("redis" if settings.REDIS_URL else "database")
    if name not in STORES:
        raise ImproperlyConfigured(
            f"COHORTSYNC_API_BUDGET_STORE must be one of {', '.join(STORES)} (or empty), not {name!r}."
        )
    if name == "redis" and not settings.REDIS_URL:
        raise ImproperlyConfigured("COHORTSYNC_API_BUDGET_STORE=redis needs REDIS_URL.")
    return name


def budget_store() -> BudgetStore:
    """The store every client of this process draws on (one per configuration)."""
    name = budget_store_name()
    if name == "memory":
        return _memory_store
    ident = (name, settings.REDIS_URL, settings.TASK_QUEUE_NAME) if name == "redis" else (name,)
    with _stores_lock:
        store = _stores.get(ident)
        if store is None:
            if name == "redis":
                store = RedisBudgetStore(settings.REDIS_URL, prefix=f"{settings.TASK_QUEUE_NAME}:budget")
            else:
                store = DatabaseBudgetStore()
            _stores[ident] = store
        return store


def memory_budget_store() -> MemoryBudgetStore:
    """The process's memory store (COHORTSYNC_API_BUDGET_STORE=memory; tests reset it)."""
    return _memory_store


def account_budget(
    *,
    key: str,
    limits: BudgetLimits,
    quota_day: Callable[[dt.datetime], QuotaDay] | None = None,
    now: Callable[[], dt.datetime] = utc_now,
    lease_seconds: float = LEASE_SECONDS,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> AccountBudget:
    """The budget a client draws on: the configured store's; or, with an injected clock or
    sleep (tests), a private memory store on that timeline, which neither shares nor waits
    on real time."""
    if clock is None and sleep is None:
        store: BudgetStore = budget_store()
        clock, sleep = time.time, time.sleep
    else:
        store = MemoryBudgetStore()
        clock, sleep = clock or time.monotonic, sleep or time.sleep
    return AccountBudget(key=key, limits=limits, store=store, quota_day=quota_day, now=now,
                         clock=clock, sleep=sleep, lease_seconds=lease_seconds)


# --- what the Destination rows say ------------------------------------------------------------


def account_budget_options(destination: Any, options: KindOptions) -> KindOptions:
    """`options` (the destination's, parsed) with each budget option (KindOptions.budget_fields)
    replaced by the smallest value among every destination record on the same account: two
    records pointing at one Marketo instance share one budget, so the smaller applies to both.
    One query; records whose options no longer parse are left out (their runs fail on them)."""
    fields = type(options).budget_fields
    if not fields:
        return options
    from destinations.accounts import destination_account_key
    from destinations.errors import ConfigurationError
    from destinations.kinds import kind_spec, kind_specs
    from destinations.models import Destination

    spec = kind_spec(destination.kind)
    same_platform = [s for s in kind_specs() if s.account_key is spec.account_key]
    setting_names = {name for s in same_platform for name in s.setting_names}
    key = destination_account_key(destination)
    smallest = {name: getattr(options, name) for name in fields}
    others = Destination.objects.filter(kind__in=[s.kind for s in same_platform]).only(
        "kind", "options", *setting_names)
    if destination.pk is not None:
        others = others.exclude(pk=destination.pk)
    for other in others:
        if destination_account_key(other) != key:
            continue
        try:
            other_options = kind_spec(other.kind).options.of(other.options or {})
        except ConfigurationError:
            continue
        for name in fields:
            value = getattr(other_options, name, None)
            if value is not None and value < smallest[name]:
                smallest[name] = value
    return dataclasses.replace(options, **smallest)


class DailyQuotaStatus(NamedTuple):
    quota: int
    used: int
    left: int
    resets_at: dt.datetime


def daily_quota_status(
    destination: Any, *, now: dt.datetime | None = None, store: BudgetStore | None = None
) -> DailyQuotaStatus | None:
    """The account's daily call quota today: (quota, used, left, resets_at), or None for
    kinds without a daily quota. `quota` is the smallest among the account's records."""
    from destinations.accounts import destination_account_key
    from destinations.kinds import kind_spec

    spec = kind_spec(destination.kind)
    if spec.daily_quota is None:
        return None
    options = account_budget_options(destination, spec.options.of(destination.options or {}))
    quota = int(getattr(options, spec.daily_quota.option))
    day = spec.daily_quota.day(now or utc_now())
    used = (store or budget_store()).day_calls(destination_account_key(destination), day.day)
    return DailyQuotaStatus(quota=quota, used=used, left=max(0, quota - used), resets_at=day.resets_at)
