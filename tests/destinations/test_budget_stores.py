"""The budget stores (destinations/budget_stores.py): the same window, concurrency and daily
semantics in memory, in the database (whichever DATABASE_URL) and in Redis (127.0.0.1:6379,
a key prefix of each test's own)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from destinations.budget_stores import (
    BudgetStore,
    DatabaseBudgetStore,
    MemoryBudgetStore,
    RedisBudgetStore,
    StartRequest,
    Window,
    database_thread,
)
from destinations.models import ApiBudget

REDIS_URL = "redis://127.0.0.1:6379/0"
KEY = "marketo:123-abc-456.mktorest.com"  # each test's own: see _own_key
T0 = 1_800_000_000.0
DAY = "2027-01-15"
SMALL = Window(3, 20.21)


@pytest.fixture(autouse=True)
def _own_key(monkeypatch, db) -> Iterator[None]:
    # The database store commits on its own connection (outside the test's transaction, on
    # PostgreSQL): each test draws on an account of its own, and removes its rows after.
    key = f"marketo:{uuid.uuid4().hex}.mktorest.com"
    monkeypatch.setattr(f"{__name__}.KEY", key)
    yield
    DatabaseBudgetStore()._run(lambda: ApiBudget.objects.filter(account_key__startswith=key).delete())


def _store(name: str) -> Iterator[BudgetStore]:
    if name == "memory":
        yield MemoryBudgetStore()
    elif name == "database":
        yield DatabaseBudgetStore()
    else:
        redis = RedisBudgetStore(REDIS_URL, prefix=f"cohortsync-test-{uuid.uuid4().hex}")
        yield redis
        redis.clear()


@pytest.fixture(params=["memory", "database", "redis"])
def store(request, db) -> Iterator[BudgetStore]:
    yield from _store(request.param)


@pytest.fixture(params=["memory", "database"])
def reserving_store(request, db) -> Iterator[BudgetStore]:
    yield from _store(request.param)


@pytest.fixture
def redis_store(db) -> Iterator[BudgetStore]:
    yield from _store("redis")


def ask(
    store: BudgetStore, now: float, *, lease: str = "", key: str = "", window: Window = SMALL,
    concurrency: int = 10, quota: int | None = None, day: str = DAY, holding: bool = False,
    lease_seconds: float = 300.0, replaces: float | None = None,
):
    return store.start(StartRequest(
        key=key or KEY, now=now, window=window, max_concurrency=concurrency, lease_id=lease or uuid.uuid4().hex,
        lease_until=now + lease_seconds, daily_quota=quota, day=day, holding=holding, replaces=replaces,
    ))


def moment(store: BudgetStore, now: float, *, lease: str = "", **kwargs) -> float:
    """When a start asked at `now` may be sent: the moment a reserving store (memory,
    database) gives it at once, or, in Redis, the time its retries after the waits Redis
    says are let through."""
    lease = lease or uuid.uuid4().hex
    verdict = ask(store, now, lease=lease, **kwargs)
    for _ in range(10):
        if verdict.started:
            return verdict.at
        assert verdict.holding, verdict
        now += verdict.wait
        verdict = ask(store, now, lease=lease, holding=True, **kwargs)
    raise AssertionError("the start never went")


def test_the_window_lets_its_calls_start_then_the_next_once_the_oldest_has_left(store):
    assert [moment(store, T0 + i / 10) for i in range(3)] == [T0, T0 + 0.1, T0 + 0.2]

    # The oldest start leaves the window (20 s + margin) 19.21 s later.
    assert moment(store, T0 + 1.0) == pytest.approx(T0 + 20.21, abs=0.002)


def test_a_full_window_reserves_its_next_free_moments_with_one_decision_each(reserving_store):
    for i in range(3):
        ask(reserving_store, T0 + i / 10)

    later = [ask(reserving_store, T0 + 1.0) for _ in range(4)]

    assert all(verdict.started for verdict in later)
    assert [verdict.at for verdict in later] == pytest.approx([T0 + 20.21, T0 + 20.31, T0 + 20.41, T0 + 40.42])


def test_a_missed_moment_is_given_back_for_the_next_free_one(reserving_store):
    paced = Window(1, 0.051)
    ask(reserving_store, T0, window=paced, quota=5)
    missed = ask(reserving_store, T0, lease="late", window=paced, quota=5)
    ask(reserving_store, T0, window=paced, quota=5)
    assert missed.at == pytest.approx(T0 + 0.051)

    # Its thread woke at +0.09: the moments after the ones still taken, never two in 51 ms.
    again = ask(reserving_store, T0 + 0.09, lease="late", window=paced, quota=5, holding=True,
                replaces=missed.at)

    assert again.started and again.at == pytest.approx(T0 + 0.153)
    assert ask(reserving_store, T0 + 0.09, window=paced, quota=5).at == pytest.approx(T0 + 0.204)
    assert reserving_store.day_calls(KEY, DAY) == 4


def test_redis_says_how_long_a_full_window_keeps_a_start_waiting(redis_store):
    for i in range(3):
        ask(redis_store, T0 + i / 10)

    refused = ask(redis_store, T0 + 1.0, lease="fourth")

    assert not refused.started and not refused.quota_reached and refused.holding
    assert refused.wait == pytest.approx(19.21, abs=0.01)
    assert not ask(redis_store, T0 + 20.2, lease="fourth", holding=True).started


def test_a_paced_window_spaces_starts(store):
    paced = Window(1, 0.051)

    assert moment(store, T0, window=paced) == T0
    assert moment(store, T0 + 0.03, window=paced) == pytest.approx(T0 + 0.051, abs=0.002)


def test_a_reservation_further_than_the_caller_can_wait_takes_nothing(reserving_store):
    assert ask(reserving_store, T0, window=Window(1, 20.21), quota=5, concurrency=1).started

    hurried = reserving_store.start(StartRequest(
        key=KEY, now=T0 + 1, window=Window(1, 20.21), max_concurrency=2, lease_id="hurried",
        lease_until=T0 + 301, daily_quota=5, day=DAY, reserve_within=10.0,
    ))

    assert not hurried.started and hurried.wait == pytest.approx(19.21)
    assert reserving_store.day_calls(KEY, DAY) == 1
    assert moment(reserving_store, T0 + 1, window=Window(1, 20.21), concurrency=2) == pytest.approx(T0 + 20.21)


def test_requests_in_flight_are_leases_given_back_when_they_finish(store):
    big = Window(100, 20.21)
    assert ask(store, T0, lease="a", window=big, concurrency=2).started
    assert ask(store, T0, lease="b", window=big, concurrency=2).started

    third = ask(store, T0 + 0.1, lease="c", window=big, concurrency=2)
    assert not third.started and not third.holding and 0 < third.wait <= 0.1

    store.finish(KEY, "a")
    assert ask(store, T0 + 0.2, lease="c", window=big, concurrency=2).started


def test_a_lease_nobody_gives_back_expires(store):
    # A worker killed mid-request (SIGKILL) never finishes: its place comes back anyway.
    big = Window(100, 20.21)
    assert ask(store, T0, lease="killed", window=big, concurrency=1, lease_seconds=5.0).started
    assert not ask(store, T0 + 4.0, window=big, concurrency=1).started

    assert ask(store, T0 + 5.5, window=big, concurrency=1).started


def test_the_daily_quota_refuses_the_call_that_would_cross_it(store):
    big = Window(100, 20.21)
    assert [ask(store, T0 + i, window=big, quota=3).started for i in range(3)] == [True] * 3

    refused = ask(store, T0 + 4, window=big, quota=3)

    assert refused.quota_reached and not refused.started and refused.day_calls == 3
    assert store.day_calls(KEY, DAY) == 3
    # Nothing was taken by the refusal: the window still has room for 97 more.
    assert ask(store, T0 + 5, window=big, quota=None).started


def test_a_new_quota_day_starts_from_zero(store):
    big = Window(100, 20.21)
    for i in range(2):
        assert ask(store, T0 + i, window=big, quota=2).started
    assert ask(store, T0 + 3, window=big, quota=2).quota_reached

    assert ask(store, T0 + 4, window=big, quota=2, day="2027-01-16").started
    assert store.day_calls(KEY, "2027-01-16") == 1
    assert store.day_calls(KEY, "2027-01-17") == 0


def test_a_start_waiting_for_the_window_keeps_its_lease_and_its_days_unit(store):
    # The unit is taken once, before the wait: a call that waited is not counted twice.
    small = Window(1, 20.21)
    assert ask(store, T0, window=small, quota=5).started

    waiting = ask(store, T0 + 1, lease="w", window=small, quota=5, concurrency=2)
    if isinstance(store, RedisBudgetStore):
        assert waiting.holding
    else:
        assert waiting.started and waiting.at == pytest.approx(T0 + 20.21)
    assert store.day_calls(KEY, DAY) == 2
    # Its lease holds the second place in flight meanwhile.
    assert not ask(store, T0 + 2, lease="x", window=Window(100, 20.21), concurrency=2).started

    if isinstance(store, RedisBudgetStore):
        assert ask(store, T0 + 21, lease="w", window=small, quota=5, concurrency=2, holding=True).started
    assert store.day_calls(KEY, DAY) == 2


def test_accounts_have_budgets_of_their_own(store):
    assert ask(store, T0, window=Window(1, 20.21), quota=1).started

    assert ask(store, T0, key=f"{KEY}-other", window=Window(1, 20.21), quota=1).started
    assert ask(store, T0, window=Window(1, 20.21), quota=1).quota_reached


def test_the_database_store_keeps_one_row_per_account(db):
    store = DatabaseBudgetStore()
    ask(store, T0, quota=10, lease="one")
    ask(store, T0 + 1, quota=10, lease="two")
    store.finish(KEY, "one")
    store.settle()

    row = ApiBudget.objects.get(account_key=KEY)
    assert row.account_key == KEY
    assert (row.day, row.day_calls) == (DAY, 2)
    assert list(row.leases) == ["two"]
    assert row.starts == [T0, T0 + 1]


def test_a_renewed_lease_outlasts_its_first_expiry(store):
    # A request slower than the lease keeps its place while its process renews it.
    big = Window(100, 20.21)
    assert ask(store, T0, lease="slow", window=big, concurrency=1, lease_seconds=5.0).started

    store.renew(KEY, ["slow", "gone"], T0 + 12.0)

    assert not ask(store, T0 + 8.0, window=big, concurrency=1).started
    store.finish(KEY, "slow")
    assert ask(store, T0 + 8.5, window=big, concurrency=1).started


def test_a_start_counts_from_when_the_store_decided_it(store):
    # Waiting for the account's row (or the process's budget thread) must not make a start
    # look older than it is: the call one window later would reach the platform too early.
    decided = T0 + 10.0
    assert store.start(StartRequest(
        key=KEY, now=T0, window=Window(1, 20.21), max_concurrency=10, lease_id="late",
        lease_until=T0 + 300.0, clock=lambda: decided,
    )).started

    assert moment(store, T0 + 25.0, window=Window(1, 20.21)) == pytest.approx(decided + 20.21, abs=0.002)


def test_the_budgets_commits_do_not_wait_for_the_disk_and_nothing_else_changes(db):
    # Waiting for the disk was most of a start's database time; a crash loses at most the
    # last fraction of a second of starts, which the budget makes good.
    from django.db import connection

    def durability() -> str:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SHOW synchronous_commit")
            else:
                cursor.execute("PRAGMA synchronous")
            return str(cursor.fetchone()[0])

    ask(DatabaseBudgetStore(), T0)

    on_the_budget_thread = database_thread.run(durability, using="default")
    if connection.vendor == "postgresql":
        assert (on_the_budget_thread, durability()) == ("off", "on")
    else:
        assert on_the_budget_thread == "1"  # NORMAL: WAL commits are not synced one by one
