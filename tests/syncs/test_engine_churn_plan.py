"""A steady-state run plans its churn from one pass over the cohort (issue 13's fleet: the
cohort was evaluated once per side of the diff) and never through a nested loop over a
misestimated cohort, with the same diff as before."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from cohorts.models import Profile
from syncs.models import RunStatus, SyncedMember
from tests.factories import ProfileFactory, SyncFactory
from tests.syncs.fakes import (  # noqa: F401
    FakeConnector,
    fake_connector_fixture,
    pro_profile,
    run_now,
    set_plan,
    synced_state,
)

pytestmark = pytest.mark.django_db

# Profiles' properties wider than 1 KB have no statistics (ANALYZE leaves such values out),
# so PostgreSQL estimates a rule's `@>` at a fixed share of the table, whatever it matches.
WIDE = "x" * 1100
MEMBERS = 500
OTHER_STATE = 20_000


@dataclass
class CohortStatement:
    sql: str
    plan: str  # the database's plan for it, just before it ran


@contextmanager
def cohort_statements() -> Iterator[list[CohortStatement]]:
    """The statements that evaluate the default cohort's rule (plan = "pro": the rule's
    property is a parameter on both databases), each explained just before it runs (the
    temporary tables it names exist then)."""
    seen: list[CohortStatement] = []
    explaining = False

    def wrapper(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        nonlocal explaining
        if not explaining and not many and any(isinstance(p, str) and '"plan"' in p for p in params or ()):
            explaining = True
            try:
                seen.append(CohortStatement(sql, _explain(sql, params)))
            finally:
                explaining = False
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield seen


def _explain(sql: str, params: Any) -> str:
    prefix = "EXPLAIN " if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN "
    with connection.cursor() as cursor:
        cursor.execute(prefix + sql, params)
        return "\n".join(" ".join(str(column) for column in row) for row in cursor.fetchall())


def test_a_churn_plan_sends_every_kind_of_change_once_and_counts_members(fake: FakeConnector) -> None:
    pro_profile("stays@example.com")
    pro_profile("Mixed@Example.com ")  # acknowledged by its normalised identity: stays
    leaves = pro_profile("leaves@example.com")
    moves = pro_profile("old@example.com")
    pro_profile("shared@example.com")
    shared_leaves = pro_profile("SHARED@example.com")  # the other profile keeps the identity
    returns = ProfileFactory(properties={"$email": "returns@example.com", "plan": "free"})
    pro_profile(None)  # no identity: skipped, every run
    sync = SyncFactory()
    first = run_now(sync)
    assert first.succeeded_adds == 5
    set_plan(returns, "pro")
    run_now(sync)  # returns joins
    set_plan(returns, "free")
    run_now(sync)  # ... and leaves: acknowledged as not a member
    fake.forget_pushes()

    set_plan(leaves, "free")
    set_plan(shared_leaves, "free")
    set_plan(returns, "pro")  # back again: a raw identity the state holds as not a member
    moves.properties = {**moves.properties, "$email": "new@example.com"}
    moves.save()
    pro_profile("joins@example.com")
    pro_profile("Joins@Example.com")  # the same new identity twice: sent once
    run = run_now(sync)

    assert fake.pushed_values() == {
        "returns@example.com": True,
        "new@example.com": True,
        "joins@example.com": True,
        "leaves@example.com": False,
        "old@example.com": False,
    }
    assert len(fake.pushed) == 5
    assert run.status == RunStatus.SUCCEEDED
    assert (run.planned_adds, run.planned_removes, run.skipped_users) == (3, 2, 1)
    # Every member by identity (profiles sharing one count once, Mixed@ once although it
    # was normalised to an acknowledged identity), and the skipped one.
    assert run.plan_sample["members"] == 8
    assert synced_state(sync)["stays@example.com"] is True
    assert synced_state(sync)["mixed@example.com"] is True
    assert synced_state(sync)["shared@example.com"] is True


def test_a_churn_plan_evaluates_the_cohort_once(fake: FakeConnector) -> None:
    for n in range(5):
        pro_profile(f"member{n}@example.com")
    leaving = pro_profile("leaving@example.com")
    sync = SyncFactory()
    run_now(sync)
    set_plan(leaving, "free")
    pro_profile("joining@example.com")

    with cohort_statements() as statements:
        run = run_now(sync)

    assert (run.planned_adds, run.planned_removes) == (1, 1)
    # PostgreSQL: the cohort meets the synced state in one FULL JOIN. SQLite has no
    # FULL JOIN before 3.39, so each side of the diff reads the cohort.
    assert len(statements) == (1 if connection.vendor == "postgresql" else 2), statements


@pytest.mark.parametrize("full_resync", [False, True])
def test_the_cohort_is_never_joined_to_the_synced_state_by_a_nested_loop(fake: FakeConnector,
                                                                        full_resync: bool) -> None:
    Profile.objects.bulk_create(
        Profile(distinct_id=f"member-{n}", properties={"$email": f"member{n}@example.com", "plan": "pro",
                                                        "padding": WIDE})
        for n in range(MEMBERS)
    )
    sync = SyncFactory()
    run_now(sync)
    pro_profile("joining@example.com", padding=WIDE)
    # Another sync's state beside this one's, as in a fleet: the sync's own rows are then
    # reached by index, dearer than the few probes a misestimated cohort seems to need.
    other = SyncFactory(cohort=sync.cohort, destination=sync.destination)
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s) "
            f"INSERT INTO {SyncedMember._meta.db_table} (sync_id, identity_value, is_member, acknowledged_at) "
            "SELECT %s, 'other' || i || '@example.com', %s, %s FROM n",
            [OTHER_STATE, other.pk, True, timezone.now()],
        )
        cursor.execute(f"ANALYZE {Profile._meta.db_table}")
        cursor.execute(f"ANALYZE {SyncedMember._meta.db_table}")

    with cohort_statements() as statements:
        run = run_now(sync, full_resync=full_resync)
    plans = [s.plan for s in statements if SyncedMember._meta.db_table in s.sql]

    assert run.planned_adds == (MEMBERS + 1 if full_resync else 1)
    assert plans
    for plan in plans:
        if connection.vendor == "postgresql":
            # Estimated at a few rows, the 501 members would each probe the state's index.
            assert "Nested Loop" not in plan, plan
        else:  # SQLite: per member, the state is searched by its unique index; or the cohort is a list
            assert "SEARCH s USING" in plan or "LIST SUBQUERY" in plan, plan
