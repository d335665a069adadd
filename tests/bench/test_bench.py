"""The benchmark machinery stays runnable: a tiny suite end to end, its guards, its bounds."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from bench import data
from bench.paths import PATH_NAMES, best_seconds, path_spec
from bench.report import record, targets
from bench.suite import StepResult, SuiteResult, suite_run
from syncs.models import RunStatus

TINY = 300


@pytest.mark.django_db
def test_the_bench_refuses_a_database_that_is_not_a_bench_database(monkeypatch) -> None:
    monkeypatch.setitem(connection.settings_dict, "NAME", "cohortsync_production")

    with pytest.raises(CommandError) as refused:
        call_command("bench", "--profiles", str(TINY))

    # SQLite is refused for being SQLite, PostgreSQL for the database's name.
    message = str(refused.value)
    assert "PostgreSQL only" in message if connection.vendor != "postgresql" else "--allow-any-database" in message


def test_best_seconds_schedules_calls_as_early_as_the_window_and_slots_allow() -> None:
    # 5 calls, 2 slots of 1 s: three waves.
    assert best_seconds(calls=5, window_calls=100, window_seconds=20.0, concurrency=2, latency=1.0) == 3.0
    # A window of 3 calls per 10 s: calls 0-2 at 0 s, 3-5 at 10 s, 6 at 20 s, each 0.1 s.
    assert best_seconds(calls=7, window_calls=3, window_seconds=10.0, concurrency=10, latency=0.1) == pytest.approx(20.1)


def test_bounds_follow_the_limits_both_sides_share() -> None:
    marketo = path_spec("marketo_sync", profiles=100_000)
    # Marketo's documented 100 calls / 20 s at 100k: 330 calls take three windows and a bit.
    assert marketo.emulator_config["calls_per_20s"] == 100
    assert marketo.bound(users=99_000) == pytest.approx(99_000 / (60 + 30 / 10 * 0.1))
    # Raised for 1M so the export still spans 5 windows.
    assert path_spec("marketo_sync", profiles=1_000_000).emulator_config["calls_per_20s"] == 667
    # 120 rowsets a second of 50 rows, long after the first window.
    rowset = path_spec("sfmc_rowset", profiles=100_000)
    assert rowset.bound(users=1_000_000) == pytest.approx(6_000, rel=0.01)
    # 32 jobs of 32,000 rows, 2 at a time, 2 requests of 2 s each.
    assert path_spec("sfmc_async", profiles=100_000).bound(users=1_024_000) == pytest.approx(1_024_000 / 64)
    for name in PATH_NAMES:
        spec = path_spec(name, profiles=1_000_000)
        config, options = spec.emulator_config, spec.destination_options
        assert options["max_concurrency"] == config.get("max_concurrency", config.get("max_concurrent_requests"))
        assert options.get("calls_per_20s", options.get("requests_per_second")) == config.get(
            "calls_per_20s", config.get("requests_per_second")
        )


def test_generated_profiles_are_deterministic() -> None:
    assert data.profile_values(12) == data.profile_values(12)
    members = sum(data.profile_values(i)[1][data.COHORT_PROPERTY] for i in range(1000))
    assert members == 990


@pytest.mark.django_db(transaction=True)
def test_a_tiny_suite_runs_every_step_and_records_its_results(tmp_path) -> None:
    if connection.vendor != "postgresql":
        # The bench is PostgreSQL only; on SQLite the promise is a clear refusal.
        with pytest.raises(CommandError, match="PostgreSQL only"):
            call_command("bench", "--profiles", str(TINY), "--allow-any-database")
        return

    result = suite_run(profiles=TINY, path_names=["marketo_sync", "sfmc_rowset"], command="test",
                       out=lambda line: None)

    steps = {(s.path, s.step): s for s in result.steps}
    assert steps[("profiles", "import")].values["created"] == TINY
    for path in ("marketo_sync", "sfmc_rowset"):
        first, churn, idle = (steps[(path, label)] for label in ("first export", "1% churn", "nothing changed"))
        assert first.values["status"] == RunStatus.SUCCEEDED, first.values
        # 99 % of the profiles are members; one in a thousand has an address Marketo refuses.
        assert first.values["users"] + first.values["skipped"] == 297
        assert first.write_calls > 0 and first.bound and first.users_per_second
        assert churn.values["users"] == 2 and "anti_join_seconds" in churn.values
        assert idle.values["users"] == 0 and idle.write_calls == 0
        assert first.values["peak_over_baseline_mib"] >= 0 and first.values["queries"] > 0
    pages = steps[("admin", "pages")].values["pages"]
    assert [p["status"] for p in pages] == [200] * len(pages)
    assert any(f"{TINY:,} failure rows" in p["page"] for p in pages)

    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nOld rows stay.\n")
    record(result, doc=doc)
    record(result, doc=doc)
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nOld rows stay.") and text.count(f"{TINY:,} profiles (") == 2
    assert "load average (1 min) at start / end: " in text
    assert any(name.startswith("marketo_sync: nothing changed") and met for name, met, _ in targets(result))


@pytest.mark.django_db
def test_the_bench_clears_the_runs_of_earlier_bench_runs_with_their_plan_records() -> None:
    from bench.suite import NAME_PREFIX, bench_data_clear
    from syncs.models import RunPlanChunk, Sync, SyncRun
    from tests.factories import ProfileFactory, SyncFactory, SyncRunFactory

    if connection.vendor != "postgresql":  # the bench, and its cleaning, run on PostgreSQL only
        with pytest.raises(CommandError, match="PostgreSQL only"):
            call_command("bench", "--fleet", "3", "--allow-any-database")
        return
    kept = SyncRunFactory()
    run = SyncRunFactory(sync=SyncFactory(name=f"{NAME_PREFIX}fleet sync 000"))
    for planned in (run, kept):
        RunPlanChunk.objects.create(run=planned, first_seq=1, is_member=True, users=1,
                                    identities='["a@example.com"]', profile_ids="[1]")
    ProfileFactory(distinct_id=f"{data.PREFIX}00000001")

    # Every run of a fleet records its plan: a second `bench --fleet` on the same database
    # failed on the plan records' foreign key.
    bench_data_clear()

    assert list(RunPlanChunk.objects.values_list("run_id", flat=True)) == [kept.pk]
    assert not SyncRun.objects.filter(pk=run.pk).exists()
    assert not Sync.objects.filter(name__startswith=NAME_PREFIX).exists()


def test_a_10m_run_is_held_to_the_10m_targets() -> None:
    def run(profiles: int, *, import_s: float, plan: float, anti: float) -> dict[str, bool]:
        result = SuiteResult(profiles=profiles, paths=["sfmc_async"], command="test", steps=[
            StepResult("profiles", "import", {"seconds": import_s}),
            StepResult("sfmc_async", "1% churn", {"plan_seconds": plan, "anti_join_seconds": anti}),
        ])
        return {name.split(":")[0].split(" profiles")[0]: met for name, met, _ in targets(result)}

    # 1M: import ≤ 60 s, plan ≤ 5 s and ≤ 2× the anti-join.
    assert run(1_000_000, import_s=59.0, plan=4.0, anti=2.1) == {"import of 1,000,000": True, "sfmc_async": True}
    # 10M: import ≤ 5 minutes (not 10 by scaling 1M's), plan ≤ 15 s and ≤ 1.5× the anti-join.
    assert run(10_000_000, import_s=310.0, plan=12.0, anti=10.0) == {"import of 10,000,000": False, "sfmc_async": True}
    assert run(10_000_000, import_s=290.0, plan=12.0, anti=7.9) == {"import of 10,000,000": True, "sfmc_async": False}
    assert run(10_000_000, import_s=290.0, plan=16.0, anti=20.0)["sfmc_async"] is False
    # Between sizes, the largest size reached sets the limits (import scaled to the run).
    assert run(3_000_000, import_s=190.0, plan=4.0, anti=2.5) == {"import of 3,000,000": False, "sfmc_async": True}
