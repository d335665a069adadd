"""Every run keeps its whole plan (for its CSV), and the sync's acknowledged members at its
end (for the trend chart); a run that fails validation keeps its skipped count."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from destinations.errors import DestinationError
from syncs.engine import ledger
from syncs.models import RunPlanChunk, RunStatus, SyncFailure, SyncRun
from syncs.selectors import run_planned_users
from syncs.services import sync_run_approve, sync_runs_prune
from tests.factories import ProfileFactory, SyncFactory
from tests.syncs.fakes import (  # noqa: F401
    FakeConnector,
    Rejection,
    fake_connector_fixture,
    pro_profile,
    run_now,
    set_plan,
)
from tests.syncs.test_engine_streamed_plan import StreamingConnector, streaming_connector  # noqa: F401

pytestmark = pytest.mark.django_db


def plan_of(run: SyncRun) -> list[tuple[str, str, str]]:
    return sorted((u.operation, u.identity, u.distinct_id) for u in run_planned_users(run))


def test_a_dry_run_records_every_user_it_would_add_and_remove(fake: FakeConnector) -> None:
    ana, bob = pro_profile("ana@example.com"), pro_profile("bob@example.com")
    carol = ProfileFactory(properties={"$email": "Carol@Example.com", "plan": "free"})
    sync = SyncFactory()
    run_now(sync)
    set_plan(ana, "free")
    set_plan(carol, "pro")

    dry = run_now(sync, dry_run=True)

    assert plan_of(dry) == [
        ("add", "carol@example.com", carol.distinct_id),
        ("remove", "ana@example.com", ""),
    ]
    assert (dry.planned_adds, dry.planned_removes) == (1, 1)
    assert bob.distinct_id not in str(plan_of(dry))


def test_a_real_run_records_its_plan_including_users_that_failed(fake: FakeConnector) -> None:
    profiles = [pro_profile(f"user{n}@example.com") for n in range(5)]
    fake.reject["user3@example.com"] = Rejection()
    sync = SyncFactory()

    run = run_now(sync)

    assert run.status == RunStatus.PARTIAL
    assert plan_of(run) == sorted(("add", f"user{n}@example.com", p.distinct_id) for n, p in enumerate(profiles))


def test_profiles_sharing_an_identity_are_planned_once(fake: FakeConnector) -> None:
    first = pro_profile("shared@example.com")
    pro_profile("SHARED@example.com ")
    pro_profile("solo@example.com")

    run = run_now(SyncFactory())

    planned = plan_of(run)
    assert [identity for _, identity, _ in planned] == ["shared@example.com", "solo@example.com"]
    assert planned[0][2] == first.distinct_id


def test_a_large_plan_is_kept_in_several_packed_rows(fake: FakeConnector, monkeypatch) -> None:
    monkeypatch.setattr(ledger, "PLAN_RECORD_ROWS", 3)
    for n in range(8):
        pro_profile(f"user{n}@example.com")
    sync = SyncFactory()

    run = run_now(sync)

    assert RunPlanChunk.objects.filter(run=run).count() == 3
    assert sorted(RunPlanChunk.objects.filter(run=run).values_list("users", flat=True)) == [2, 3, 3]
    identities = [u.identity for u in run_planned_users(run)]
    assert sorted(identities) == [f"user{n}@example.com" for n in range(8)]


def test_a_streamed_first_export_records_every_chunk_once(streaming: StreamingConnector, monkeypatch) -> None:
    monkeypatch.setattr(ledger, "PLAN_RECORD_ROWS", 2)
    for n in range(12):
        pro_profile(f"user{n:02d}@example.com")
    pro_profile("User00@Example.com")  # normalised in Python, same identity as the first
    pro_profile(None)  # skipped
    sync = SyncFactory()

    run = run_now(sync)

    assert run.status == RunStatus.SUCCEEDED
    planned = [u.identity for u in run_planned_users(run)]
    assert sorted(planned) == [f"user{n:02d}@example.com" for n in range(12)]
    assert run.planned_adds == 12


def test_an_approved_run_records_the_plan_it_sends_not_a_second_copy(fake: FakeConnector, settings) -> None:
    settings.COHORTSYNC_REMOVAL_GUARD_RATIO = 0.5
    profiles = [pro_profile(f"user{n}@example.com") for n in range(4)]
    sync = SyncFactory()
    run_now(sync)
    for profile in profiles[:3]:
        set_plan(profile, "free")
    held = run_now(sync)
    assert held.status == RunStatus.AWAITING_APPROVAL
    assert len(plan_of(held)) == 3

    sync_run_approve(run=held, approved_by=None)
    from syncs.services import sync_run_execute

    sent = sync_run_execute(run_id=held.pk)

    assert sent.status == RunStatus.SUCCEEDED
    assert plan_of(sent) == [("remove", f"user{n}@example.com", "") for n in range(3)]


def test_plans_are_pruned_with_their_runs(fake: FakeConnector) -> None:
    ana = pro_profile("ana@example.com")
    sync = SyncFactory()
    old = run_now(sync, dry_run=True)
    kept = run_now(sync, dry_run=True)
    SyncRun.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=90))

    assert sync_runs_prune(older_than_days=30) == 1

    assert not RunPlanChunk.objects.filter(run_id=old.pk).exists()
    assert plan_of(kept) == [("add", "ana@example.com", ana.distinct_id)]


def test_acknowledged_members_follow_each_run(fake: FakeConnector) -> None:
    ana = pro_profile("ana@example.com")
    pro_profile("bob@example.com")
    pro_profile("cy@example.com")
    fake.reject["cy@example.com"] = Rejection()
    sync = SyncFactory()

    first = run_now(sync)
    assert first.acknowledged_members == 2  # cy failed

    fake.reject.clear()
    set_plan(ana, "free")
    dee = pro_profile("dee@example.com")
    second = run_now(sync)
    assert (second.succeeded_adds, second.succeeded_removes) == (2, 1)
    assert second.acknowledged_members == 3  # bob, cy, dee

    dry = run_now(sync, dry_run=True)
    assert dry.acknowledged_members == 3

    set_plan(dee, "free")
    full = run_now(sync, full_resync=True)
    assert full.acknowledged_members == 2  # bob, cy: counted, since members were re-sent


def test_a_run_that_fails_before_planning_records_no_total(fake: FakeConnector) -> None:
    pro_profile("ana@example.com")
    sync = SyncFactory(cohort__rules={"all": [{"property": "plan", "op": "eqq", "value": "x"}]})

    run = run_now(sync)

    assert run.status == RunStatus.FAILED
    assert run.acknowledged_members is None


def test_a_run_failing_validation_counts_the_users_it_skipped(fake: FakeConnector) -> None:
    # Issue 15: a failed run showed "Skipped before sending: 0" next to 2 skipped rows.
    ana = pro_profile("ana@example.com")
    pro_profile(None)
    pro_profile("not-an-email")
    fake.validation_error = DestinationError("The field cohortPro does not exist in Marketo.", code="field_missing")

    run = run_now(SyncFactory())

    assert run.status == RunStatus.FAILED
    assert SyncFailure.objects.filter(run=run, operation=SyncFailure.Operation.SKIP).count() == 2
    assert run.skipped_users == 2
    assert (run.planned_adds, run.planned_removes) == (1, 0)
    assert plan_of(run) == [("add", "ana@example.com", ana.distinct_id)]
