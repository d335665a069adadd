"""The mass-removal guard: hold a run that would remove too many users until someone approves."""

from __future__ import annotations

import pytest

from syncs.errors import SyncRunConflict, SyncRunStateError
from syncs.models import RunStatus, SyncRun
from syncs.services import (
    sync_run_approve,
    sync_run_cancel,
    sync_run_execute,
    sync_run_request,
)
from tests.factories import SyncFactory, UserFactory
from tests.syncs.fakes import (  # noqa: F401
    FakeConnector,
    fake_connector_fixture,
    pro_profile,
    run_now,
    set_plan,
    synced_state,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def four_synced(fake: FakeConnector):  # type: ignore[no-untyped-def]
    profiles = [pro_profile(f"user{n}@example.com") for n in range(4)]
    sync = SyncFactory()
    run_now(sync)
    fake.forget_pushes()
    return sync, profiles


def test_removing_more_than_the_ratio_waits_for_approval(fake: FakeConnector, four_synced) -> None:
    sync, profiles = four_synced
    for profile in profiles[:3]:
        set_plan(profile, "free")

    run = run_now(sync)

    assert run.status == RunStatus.AWAITING_APPROVAL
    assert run.error_code == "removal_guard"
    assert "3 of 4" in run.error_message and "Nothing was sent" in run.error_message
    assert fake.pushes == []
    assert {r["identity"] for r in run.plan_sample["removes"]} == {f"user{n}@example.com" for n in range(3)}
    assert run.plan_sample["guard"]["holds"] is True
    assert all(synced_state(sync).values())


def test_removals_within_the_ratio_are_sent(fake: FakeConnector, four_synced) -> None:
    sync, profiles = four_synced
    set_plan(profiles[0], "free")
    set_plan(profiles[1], "free")  # 2 of 4 = 50%: not more than the ratio

    run = run_now(sync)

    assert run.status == RunStatus.SUCCEEDED and run.succeeded_removes == 2


def test_the_sync_option_overrides_the_ratio(fake: FakeConnector, four_synced) -> None:
    sync, profiles = four_synced
    sync.options = {"removal_guard_ratio": 0.2}
    sync.save()
    set_plan(profiles[0], "free")

    assert run_now(sync).status == RunStatus.AWAITING_APPROVAL


def test_an_empty_cohort_is_held_even_when_every_removal_is_allowed(fake: FakeConnector, four_synced) -> None:
    sync, profiles = four_synced
    sync.options = {"removal_guard_ratio": 1.0}
    sync.save()
    for profile in profiles:
        set_plan(profile, "free")

    run = run_now(sync)

    assert run.status == RunStatus.AWAITING_APPROVAL
    assert "no members now" in run.error_message


def test_approval_sends_the_held_removals(fake: FakeConnector, four_synced, django_capture_on_commit_callbacks) -> None:
    sync, profiles = four_synced
    for profile in profiles[:3]:
        set_plan(profile, "free")
    held = run_now(sync)
    approver = UserFactory(username="lead")

    with django_capture_on_commit_callbacks(execute=True):
        approved = sync_run_approve(run=held, approved_by=approver)

    assert approved.pk == held.pk and approved.approved_by == approver and approved.approved_at
    held.refresh_from_db()
    assert held.status == RunStatus.SUCCEEDED
    assert held.succeeded_removes == 3
    assert fake.pushed_values() == {f"user{n}@example.com": False for n in range(3)}
    assert sum(synced_state(sync).values()) == 1


def test_approving_a_run_that_is_not_held_is_refused(four_synced) -> None:
    sync, _ = four_synced
    run = SyncRun.objects.filter(sync=sync).get()

    with pytest.raises(SyncRunStateError, match="not awaiting approval"):
        sync_run_approve(run=run, approved_by=None)


def test_a_held_run_blocks_new_runs_but_not_dry_runs(fake: FakeConnector, four_synced) -> None:
    sync, profiles = four_synced
    for profile in profiles[:3]:
        set_plan(profile, "free")
    held = run_now(sync)

    with pytest.raises(SyncRunConflict, match="awaiting approval"):
        sync_run_request(sync=sync, trigger=SyncRun.Trigger.MANUAL)
    dry = run_now(sync, dry_run=True)

    assert dry.status == RunStatus.SUCCEEDED and dry.planned_removes == 3
    assert dry.plan_sample["guard"]["holds"] is True
    assert fake.pushes == []
    held.refresh_from_db()
    assert held.status == RunStatus.AWAITING_APPROVAL


def test_cancelling_a_held_run_frees_the_sync(fake: FakeConnector, four_synced) -> None:
    sync, profiles = four_synced
    for profile in profiles[:3]:
        set_plan(profile, "free")
    held = run_now(sync)

    assert sync_run_cancel(run=held, requested_by=None).status == RunStatus.CANCELLED
    nxt = sync_run_request(sync=sync, trigger=SyncRun.Trigger.MANUAL)
    assert sync_run_execute(run_id=nxt.pk).status == RunStatus.AWAITING_APPROVAL
