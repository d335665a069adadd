"""An account's API budget (destinations/budget.py): how a start waits, the daily quota, the
budget two destination records on one account share, and what counts against it."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.core.cache import cache

from destinations import budget as budget_module
from destinations.budget import (
    AccountBudget,
    BudgetBusyError,
    BudgetLimits,
    DailyQuotaReached,
    budget_store_name,
    daily_quota_status,
    memory_budget_store,
)
from destinations.budget_stores import MemoryBudgetStore, StartRequest
from destinations.errors import QuotaExhaustedError
from destinations.kindspec import QuotaDay
from destinations.marketo.client import MarketoClient
from destinations.marketo.settings import quota_day
from destinations.registry import connector_for
from tests.factories import DestinationFactory

SANDBOX_ID = "sandbox-client-id"
SANDBOX_SECRET = "sandbox-client-secret"
NOW = dt.datetime(2027, 1, 15, 17, 0, tzinfo=dt.UTC)  # 11:00 in Chicago
RESETS = dt.datetime(2027, 1, 16, 6, 0, tzinfo=dt.UTC)  # midnight in Chicago


class FakeClock:
    """A shared clock that only moves when a thread sleeps; remembers each thread's last read."""

    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()
        self._last = threading.local()

    def __call__(self) -> float:
        with self._lock:
            self._last.value = self.now
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    @property
    def last_read(self) -> float:
        return self._last.value


def budget(limits: BudgetLimits, clock: FakeClock, sleep=None, **kwargs) -> AccountBudget:
    return AccountBudget(key="test:account", limits=limits, store=MemoryBudgetStore(), clock=clock,
                         sleep=sleep or clock.sleep, **kwargs)


# --- waiting for a start --------------------------------------------------------------------


class RecordingStore(MemoryBudgetStore):
    """Remembers the moment each start was given, and each thread's last."""

    def __init__(self) -> None:
        super().__init__()
        self.moments: list[float] = []
        self.last = threading.local()

    def start(self, request: StartRequest):
        verdict = super().start(request)
        if verdict.started:
            self.moments.append(verdict.at)
            self.last.at = verdict.at
        return verdict


def test_starts_never_exceed_the_window_in_any_window_across_threads():
    clock = FakeClock()
    store = RecordingStore()
    shared = AccountBudget(key="test:account", limits=BudgetLimits(window_calls=10, window_seconds=1.0,
                                                                   max_concurrency=8),
                           store=store, clock=clock, sleep=clock.sleep)
    sent_too_soon: list[float] = []

    def worker() -> None:
        for _ in range(25):
            lease = shared.start()
            if clock() < store.last.at:  # start() returned before the moment it was given
                sent_too_soon.append(clock())
            shared.finish(lease)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sent_too_soon == []
    starts = sorted(store.moments)
    assert len(starts) == 200
    for i, start in enumerate(starts):
        in_window = sum(1 for other in starts[i:] if other < start + 1.0)
        assert in_window <= 10, f"{in_window} starts within 1s of t={start}"
    # 200 starts at 10 per (1 s + margin) take at least 19 seconds of (fake) time.
    assert starts[-1] >= 19.0


def test_a_window_lets_a_burst_through_then_waits_the_window_and_its_margin():
    clock = FakeClock()
    waits: list[float] = []
    limits = BudgetLimits(window_calls=5, window_seconds=20.0, max_concurrency=10)
    account = budget(limits, clock, sleep=lambda s: (waits.append(s), clock.sleep(s)))

    for _ in range(5):
        account.start()
    assert waits == []

    account.start()
    assert sum(waits) == pytest.approx(20.21)


def test_a_paced_budget_spaces_starts_evenly_instead_of_bursting():
    clock = FakeClock()
    account = budget(BudgetLimits(window_calls=4, window_seconds=1.0, max_concurrency=4, paced=True), clock)
    starts = []

    for _ in range(6):
        account.finish(account.start())
        starts.append(clock.last_read)

    # (1 s + twice its 20 ms margin) / 4 apart.
    assert [b - a for a, b in zip(starts, starts[1:], strict=False)] == [pytest.approx(0.26, abs=0.0011)] * 5


def test_a_start_that_wakes_too_late_for_its_moment_takes_a_new_one():
    # Sent 50 ms after its moment, a call could share SFMC's second with the calls reserved
    # after it: it gives the moment back and takes the next free one instead.
    clock = FakeClock()
    store = RecordingStore()
    overslept = []

    def oversleep(seconds: float) -> None:
        clock.sleep(seconds + (0.05 if not overslept else 0.0))
        overslept.append(seconds)

    account = AccountBudget(key="test:account", store=store, clock=clock, sleep=oversleep,
                            limits=BudgetLimits(window_calls=4, window_seconds=1.0, max_concurrency=4, paced=True,
                                                daily_quota=10),
                            quota_day=lambda now: QuotaDay(day="2027-01-15", resets_at=RESETS))
    account.finish(account.start())

    account.finish(account.start())

    assert store.moments == pytest.approx([0.0, 0.26, 0.31])
    assert clock.now == pytest.approx(0.31)
    # One call, one unit of the day, however many moments it took.
    assert store.day_calls("test:account", "2027-01-15") == 2


@pytest.mark.parametrize(("calls", "seconds", "concurrency", "quota"),
                         [(0, 1.0, 1, None), (5, 0, 1, None), (5, 1.0, 0, None), (5, 1.0, 1, 0)])
def test_impossible_budgets_are_refused(calls, seconds, concurrency, quota):
    with pytest.raises(ValueError):
        BudgetLimits(window_calls=calls, window_seconds=seconds, max_concurrency=concurrency, daily_quota=quota)


def test_a_person_waiting_is_not_kept_waiting_behind_running_syncs():
    clock = FakeClock()
    account = budget(BudgetLimits(window_calls=1, window_seconds=20.0, max_concurrency=2), clock)
    account.start()

    with pytest.raises(BudgetBusyError) as caught:
        account.start(max_wait=10.0)

    assert caught.value.stored_code == "budget_busy"
    assert clock.now == 0.0
    # The lease the refused start had taken while waiting for the window was given back.
    assert len(account.store._states["test:account"].leases) == 1


def test_requests_in_flight_keep_their_places_while_their_process_renews_them():
    clock = FakeClock()
    account = budget(BudgetLimits(window_calls=100, window_seconds=20.0, max_concurrency=1), clock,
                     sleep=lambda s: (_ for _ in ()).throw(AssertionError("waited")), lease_seconds=5.0)
    slow = account.start()
    clock.now = 4.0

    budget_module._keeper.renew_now()

    clock.now = 8.0  # past the first expiry: the place is still taken
    assert not account.store.start(StartRequest(
        key=account.key, now=clock.now, window=account.limits.window, max_concurrency=1, lease_id="other",
        lease_until=clock.now + 5.0)).started
    account.finish(slow)
    account.start()


def test_the_call_that_would_cross_the_daily_quota_is_refused_before_it_is_sent():
    clock = FakeClock()
    limits = BudgetLimits(window_calls=100, window_seconds=20.0, max_concurrency=10, daily_quota=2)
    account = budget(limits, clock, quota_day=quota_day, now=lambda: NOW)
    account.start()
    account.start()

    with pytest.raises(DailyQuotaReached) as caught:
        account.start()

    assert isinstance(caught.value, QuotaExhaustedError)
    assert (caught.value.quota, caught.value.used, caught.value.resets_at) == (2, 2, RESETS)
    assert caught.value.resumes_at == RESETS.isoformat()
    assert clock.now == 0.0  # refused at once, not after waiting


def test_the_next_quota_day_starts_afresh():
    clock = FakeClock()
    today = [NOW]
    limits = BudgetLimits(window_calls=100, window_seconds=20.0, max_concurrency=10, daily_quota=1)
    account = budget(limits, clock, quota_day=quota_day, now=lambda: today[0])
    account.start()
    with pytest.raises(DailyQuotaReached):
        account.start()

    today[0] = RESETS + dt.timedelta(seconds=1)

    account.start()


def test_marketos_quota_day_is_the_calendar_day_in_chicago():
    assert quota_day(dt.datetime(2027, 1, 16, 5, 59, tzinfo=dt.UTC)) == QuotaDay("2027-01-15", RESETS)
    assert quota_day(dt.datetime(2027, 1, 16, 6, 0, tzinfo=dt.UTC)).day == "2027-01-16"


def test_the_store_follows_redis_url_unless_chosen(settings):
    settings.COHORTSYNC_API_BUDGET_STORE = ""
    settings.REDIS_URL = ""
    assert budget_store_name() == "database"
    settings.REDIS_URL = "redis://127.0.0.1:6379/0"
    assert budget_store_name() == "redis"
    settings.COHORTSYNC_API_BUDGET_STORE = "database"
    assert budget_store_name() == "database"


# --- one budget per account ---------------------------------------------------------------


def test_two_marketo_records_on_one_instance_both_get_the_smaller_budget(db):
    first = DestinationFactory(marketo=True, options={"calls_per_20s": 80, "max_concurrency": 3})
    second = DestinationFactory(marketo=True, base_url="https://123-abc-456.mktorest.com/rest",
                                options={"calls_per_20s": 40, "max_concurrency": 8, "daily_call_quota": 9000})
    static_list = DestinationFactory(static_list=True, options={"daily_call_quota": 20000})
    elsewhere = DestinationFactory(marketo=True, base_url="https://999-XYZ-000.mktorest.com",
                                   options={"calls_per_20s": 5, "max_concurrency": 1, "daily_call_quota": 10})

    shared = BudgetLimits(window_calls=40, window_seconds=20.0, max_concurrency=3, daily_quota=9000)
    assert connector_for(first).client.budget.limits == shared
    assert connector_for(second).client.budget.limits == shared
    assert connector_for(static_list).client.budget.limits == shared
    assert connector_for(first).client.budget.key == connector_for(second).client.budget.key
    # A run's concurrency follows the account's budget too.
    assert connector_for(first).send_plan(10).concurrency == 3
    # Another instance keeps its own.
    assert connector_for(elsewhere).client.budget.limits == BudgetLimits(
        window_calls=5, window_seconds=20.0, max_concurrency=1, daily_quota=10)


def test_two_sfmc_records_on_one_account_both_get_the_smaller_budget(db):
    data_extension = DestinationFactory(account_id="514009877", options={"requests_per_second": 30})
    contacts = DestinationFactory(contacts=True, account_id="514009877",
                                  options={"requests_per_second": 10.0, "max_concurrency": 6})
    other_unit = DestinationFactory(account_id="514000001", options={"requests_per_second": 2})

    shared = BudgetLimits(window_calls=10, window_seconds=1.0, max_concurrency=4, paced=True)
    assert connector_for(data_extension).client.budget.limits == shared
    assert connector_for(contacts).client.budget.limits == shared
    assert connector_for(other_unit).client.budget.limits.window_calls == 2


# --- what counts -------------------------------------------------------------------------


@pytest.fixture
def marketo(sandbox):
    cache.clear()  # tokens live in the process-wide cache
    return sandbox.sandboxes.marketo


def test_identity_calls_do_not_count_against_the_budget(sandbox, marketo):
    client = MarketoClient(base_url=sandbox.marketo_base_url, client_id=SANDBOX_ID, client_secret=SANDBOX_SECRET,
                           calls_per_20s=2, daily_call_quota=3)
    day = quota_day(dt.datetime.now(dt.UTC)).day

    client.describe_leads()
    client.access_token(refresh=True)
    client.access_token(refresh=True)
    client.describe_leads()

    calls = marketo.state()["calls"]
    assert calls["by_endpoint"]["POST /identity/oauth/token"] == 3
    assert memory_budget_store().day_calls(client.budget.key, day) == calls["daily_used"] == 2
    # Two data calls filled the window of 2 without waiting behind the tokens.
    assert len(memory_budget_store()._states[client.budget.key].starts) == 2


def test_marketo_stops_before_the_call_that_crosses_daily_call_quota(sandbox, marketo):
    marketo.configure(daily_quota=3)  # Marketo would answer 607 on the fourth call
    client = MarketoClient(base_url=sandbox.marketo_base_url, client_id=SANDBOX_ID, client_secret=SANDBOX_SECRET,
                           daily_call_quota=2)
    client.describe_leads()
    client.describe_leads()

    with pytest.raises(QuotaExhaustedError) as caught:
        client.describe_leads()

    assert caught.value.stored_code == "quota_exhausted"
    assert "daily_call_quota" in caught.value.message and "America/Chicago" in caught.value.message
    resets = dt.datetime.fromisoformat(caught.value.resumes_at)
    assert f"{resets:%Y-%m-%d %H:%M} UTC" in caught.value.message
    calls = marketo.state()["calls"]
    assert calls["daily_used"] == 2 and "607" not in calls["refused"]


def test_daily_quota_status_says_what_is_left_today(db, sandbox, marketo):
    destination = DestinationFactory(marketo=True, base_url=sandbox.marketo_base_url, client_id=SANDBOX_ID,
                                     client_secret=SANDBOX_SECRET, options={"daily_call_quota": 10})
    DestinationFactory(marketo=True, base_url=sandbox.marketo_base_url, options={"daily_call_quota": 8})
    client = connector_for(destination).client
    for _ in range(3):
        client.describe_leads()

    status = daily_quota_status(destination, now=dt.datetime.now(dt.UTC))

    assert status is not None
    assert (status.quota, status.used, status.left) == (8, 3, 5)
    assert status.resets_at == quota_day(dt.datetime.now(dt.UTC)).resets_at
    assert daily_quota_status(DestinationFactory()) is None  # SFMC has no daily quota
