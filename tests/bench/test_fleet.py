"""`bench --fleet`: a tiny fleet through the real task cluster, and how its figures are judged."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from bench.fleet import (
    Account,
    AccountCycle,
    CycleResult,
    FleetResult,
    fleet_run,
    member,
    record,
    targets,
)
from cohorts.selectors import cohort_members
from syncs.models import RunStatus, Sync, SyncedMember, SyncRun


def test_every_cohort_holds_99_percent_of_the_profiles_and_leaves_out_its_own_1_percent() -> None:
    left_out = [{i for i in range(1000) if not member(i, cohort)} for cohort in range(3)]

    assert [len(ids) for ids in left_out] == [10, 10, 10]
    assert not left_out[0] & left_out[1]


def _cycle(wall: float, refused: dict[str, int], finished: int = 3) -> CycleResult:
    account = AccountCycle(account=Account(0, "marketo"), syncs=3, calls=12, budget_calls=10, writes=6,
                           refused=refused, run_api_calls=12, bound_seconds=0.4)
    return CycleResult(number=1, syncs=3, due_at=None, runs_by_status={"succeeded": finished}, finished=finished,
                       wall_seconds=wall, lag_seconds=20.0, run_seconds=[1.0, 2.0, 3.0], changes=30,
                       failed_users=0, cluster_cpu_seconds=5.0, database_active_seconds=1.0,
                       database_transactions=100, accounts=[account])


def test_a_cycle_meets_its_targets_only_in_time_and_within_every_budget() -> None:
    def verdicts(cycle: CycleResult) -> list[bool]:
        return [ok for _, ok, _ in targets(FleetResult(syncs=3, members=100, workers=2, command="t", cycles=[cycle]))]

    assert verdicts(_cycle(119.0, {})) == [True, True]
    assert verdicts(_cycle(121.0, {})) == [False, True]
    assert verdicts(_cycle(10.0, {"606": 2})) == [True, False]
    assert verdicts(_cycle(10.0, {}, finished=2)) == [False, True]


def test_recording_appends_below_the_results_mark(tmp_path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nKept.\n")
    result = FleetResult(syncs=3, members=100, workers=2, command="bench --fleet 3", cycles=[_cycle(9.5, {"606": 1})],
                         machine={"cores": "2"})

    record(result, doc=doc)

    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nKept.") and "## Results" in text
    assert "fleet of 3 syncs" in text and "| 1 | Marketo instance 1 | 3 | 12 (10) | 6 | 1 × 606 | 0.4 |" in text
    assert "**missed**: cycle 1: no account exceeds its budget" in text


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_tiny_fleet_cycle_runs_every_sync_through_the_task_cluster() -> None:
    if connection.vendor != "postgresql":
        with pytest.raises(CommandError, match="PostgreSQL only"):
            call_command("bench", "--fleet", "3", "--profiles", "300", "--allow-any-database")
        return

    result = fleet_run(syncs=3, members=300, cycles=1, workers=2, command="test", out=lambda line: None)

    [cycle] = result.cycles
    assert cycle.finished == 3 and cycle.runs_by_status == {RunStatus.SUCCEEDED: 3}
    # 1 % of 300 members: one leaves and one joins each cohort.
    assert cycle.changes == 3 * 2
    assert SyncRun.objects.filter(trigger=SyncRun.Trigger.SCHEDULE).count() == 3
    assert 0 < cycle.wall_seconds and cycle.cluster_cpu_seconds > 0 and cycle.database_transactions > 0
    # Three syncs fill the first emulator's accounts (one Marketo, two SFMC); the second has none.
    used = {(a.account.emulator, a.account.api): a.syncs for a in cycle.accounts if a.syncs}
    assert used == {(0, "marketo"): 1, (0, "sfmc"): 2}
    assert all(a.writes > 0 and not a.refused for a in cycle.accounts if a.syncs)
    # The seeded state plus the churn: every member acknowledged, nobody else.
    for sync in Sync.objects.select_related("cohort"):
        acknowledged = set(SyncedMember.objects.filter(sync=sync, is_member=True).values_list("identity_value", flat=True))
        assert len(acknowledged) == cohort_members(sync.cohort).count() > 290
