"""`bench --shared-budget`: how its windows are counted and judged, and a tiny run through two
real task clusters."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from bench.shared_budget import (
    SharedBudgetResult,
    record,
    shared_budget_run,
    targets,
    window_figures,
)
from syncs.models import RunStatus


def test_windows_count_the_busiest_20_seconds_and_each_full_window():
    arrivals = [0.0, 1.0, 19.9, 20.0, 25.0, 39.0, 41.0, 45.0]

    busiest, full = window_figures(arrivals)

    # [1.0, 21.0) holds 1.0, 19.9, 20.0; [19.9, 39.9) holds 19.9, 20.0, 25.0, 39.0.
    assert busiest == 4
    # Two full windows from the first call: [0, 20) and [20, 40); 41 and 45 start a third.
    assert full == [3, 3]


def _result(busiest: int, full: list[int], refused: dict[str, int] | None = None) -> SharedBudgetResult:
    runs = [{"sync": n, "status": RunStatus.SUCCEEDED} for n in (1, 2)]
    return SharedBudgetResult(members=100, command="t", runs=runs, busiest_window=busiest, full_windows=full,
                              refused=refused or {})


def test_a_run_meets_its_targets_within_the_budget_using_most_of_it():
    def verdicts(result: SharedBudgetResult) -> list[bool]:
        return [ok for _, ok, _ in targets(result)]

    assert verdicts(_result(100, [99, 98])) == [True, True, True, True]
    assert verdicts(_result(101, [99, 98])) == [True, False, True, True]
    assert verdicts(_result(100, [99, 98], {"606": 1})) == [True, True, False, True]
    assert verdicts(_result(100, [99, 60])) == [True, True, True, False]


def test_a_recorded_run_names_its_machine_commit_figures_and_verdicts(tmp_path):
    result = _result(100, [99, 60], {"615": 2})
    result.machine = {"cores": "2", "commit": "abc1234", "python": "3.11.7"}
    result.runs = [{"sync": n, "status": RunStatus.SUCCEEDED, "succeeded": 300, "attempted": 300,
                    "api_calls": 3, "seconds": 1.5} for n in (1, 2)]

    text = record(result, doc=tmp_path / "benchmarks.md").read_text()

    assert "shared budget, 2 syncs × ~100 members, two qclusters" in text
    assert "commit abc1234" in text and "  sync 1: succeeded, 300/300 users, 3 API calls, 1.5 s" in text
    assert "- **missed**: 0 calls refused: 2 × 615" in text
    assert "- **missed**: ≥ 85% of the budget used" in text


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_tiny_shared_budget_run_goes_through_two_clusters() -> None:
    if connection.vendor != "postgresql":
        with pytest.raises(CommandError, match="PostgreSQL only"):
            call_command("bench", "--shared-budget", "--profiles", "300", "--allow-any-database")
        return

    result = shared_budget_run(members=600, command="test", out=lambda line: None)

    assert [run["status"] for run in result.runs] == [RunStatus.SUCCEEDED] * 2
    assert all(run["succeeded"] == run["attempted"] > 500 for run in result.runs)
    # Every data call the runs made was let through (identity calls are not budgeted), none refused.
    assert result.calls == sum(run["api_calls"] for run in result.runs) - result.identity_calls >= 2 * 3
    assert result.refused == {}
    assert result.busiest_window == result.calls
