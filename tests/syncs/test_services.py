"""Run controls: requests and conflicts, dry runs, full resyncs, cancel, retry, frozen syncs."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from syncs.errors import SyncRunConflict, SyncRunStateError
from syncs.models import RunStatus, SyncFailure, SyncRun
from syncs.services import (
    sync_run_cancel,
    sync_run_create,
    sync_run_execute,
    sync_run_request,
    sync_run_retry_failed,
    sync_update,
)
from tests.factories import SyncFactory, SyncRunFactory, UserFactory
from tests.syncs.fakes import (  # noqa: F401
    FakeConnector,
    Rejection,
    fake_connector_fixture,
    pro_profile,
    run_now,
    set_plan,
    synced_state,
)

pytestmark = pytest.mark.django_db


def test_request_queues_a_run_and_enqueues_it_on_commit(fake: FakeConnector, django_capture_on_commit_callbacks) -> None:
    pro_profile("ana@example.com")
    sync = SyncFactory()
    user = UserFactory()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run = sync_run_request(sync=sync, trigger=SyncRun.Trigger.MANUAL, requested_by=user)
        assert run.status == RunStatus.QUEUED

    # Q_CLUSTER sync mode: the enqueued task ran the run at commit.
    assert len(callbacks) == 1
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.triggered_by == user
    assert synced_state(sync) == {"ana@example.com": True}


def test_second_request_while_one_is_queued_conflicts(fake: FakeConnector) -> None:
    sync = SyncFactory()
    first = sync_run_request(sync=sync, trigger=SyncRun.Trigger.MANUAL)

    with pytest.raises(SyncRunConflict) as conflict:
        sync_run_request(sync=sync, trigger=SyncRun.Trigger.MANUAL)

    assert conflict.value.active_run == first
    assert sync.name in conflict.value.message
    assert SyncRun.objects.filter(sync=sync).count() == 1


def test_the_database_refuses_two_active_runs_for_one_sync() -> None:
    sync = SyncFactory()
    SyncRunFactory(sync=sync, status=RunStatus.RUNNING)

    with pytest.raises(IntegrityError), transaction.atomic():
        SyncRunFactory(sync=sync, status=RunStatus.QUEUED)


def test_a_run_is_claimed_once_and_a_redelivered_task_is_a_no_op(fake: FakeConnector) -> None:
    pro_profile("ana@example.com")
    sync = SyncFactory()
    run = sync_run_create(sync=sync, trigger=SyncRun.Trigger.MANUAL)

    first = sync_run_execute(run_id=run.pk)
    pushes = len(fake.pushes)
    second = sync_run_execute(run_id=run.pk)

    assert first.status == second.status == RunStatus.SUCCEEDED
    assert len(fake.pushes) == pushes == 1
    assert second.finished_at == first.finished_at


def test_concurrent_claims_yield_one_running_run(fake: FakeConnector) -> None:
    from syncs.engine.runner import run_claim

    run = sync_run_create(sync=SyncFactory(), trigger=SyncRun.Trigger.MANUAL)

    assert [run_claim(run_id=run.pk), run_claim(run_id=run.pk)] == [True, False]
    assert SyncRun.objects.filter(status=RunStatus.RUNNING).count() == 1


def test_dry_run_stores_the_plan_and_sends_nothing(fake: FakeConnector) -> None:
    ana = pro_profile("ana@example.com")
    pro_profile("bob@example.com")
    sync = SyncFactory()
    run_now(sync)
    fake.forget_pushes()
    set_plan(ana, "free")
    carol = pro_profile("carol@example.com")

    run = run_now(sync, dry_run=True)

    assert run.status == RunStatus.SUCCEEDED and run.is_dry_run
    assert fake.pushes == [] and fake.validations == []
    assert run.api_calls == 0
    assert (run.planned_adds, run.planned_removes, run.attempted_adds) == (1, 1, 0)
    assert run.plan_sample["adds"] == [{"identity": "carol@example.com", "distinct_id": carol.distinct_id}]
    assert run.plan_sample["removes"] == [{"identity": "ana@example.com"}]
    assert synced_state(sync)["ana@example.com"] is True


def test_full_resync_resends_every_member_and_every_leaver(fake: FakeConnector) -> None:
    ana = pro_profile("ana@example.com")
    pro_profile("bob@example.com")
    sync = SyncFactory()
    run_now(sync)
    set_plan(ana, "free")
    fake.forget_pushes()

    run = run_now(sync, full_resync=True)

    assert fake.pushed_values() == {"bob@example.com": True, "ana@example.com": False}
    assert run.is_full_resync and run.status == RunStatus.SUCCEEDED


def test_cancel_a_queued_run_at_once(fake: FakeConnector) -> None:
    user = UserFactory()
    run = sync_run_create(sync=SyncFactory(), trigger=SyncRun.Trigger.MANUAL)

    cancelled = sync_run_cancel(run=run, requested_by=user)

    assert cancelled.status == RunStatus.CANCELLED and cancelled.cancelled_by == user
    assert sync_run_execute(run_id=run.pk).status == RunStatus.CANCELLED
    assert fake.pushes == []


def test_cancel_a_running_run_stops_it_between_batches(fake: FakeConnector, monkeypatch) -> None:
    from syncs.engine import runner

    for n in range(6):
        pro_profile(f"user{n}@example.com")
    sync = SyncFactory()
    user = UserFactory(username="maria")
    run = sync_run_create(sync=sync, trigger=SyncRun.Trigger.MANUAL)
    real_check = runner._cancel_requested

    def cancel_after_first_batch(run_: SyncRun) -> bool:
        # The admin's cancel arrives while the first batch is being recorded.
        if fake.pushes and run_.cancel_requested_at is None:
            sync_run_cancel(run=SyncRun.objects.get(pk=run.pk), requested_by=user)
        return real_check(run_)

    monkeypatch.setattr(runner, "_cancel_requested", cancel_after_first_batch)
    result = sync_run_execute(run_id=run.pk)

    assert result.status == RunStatus.CANCELLED
    # The first batch, and the queued second one if a thread had already taken it.
    sent = 2 * len(fake.pushes)
    assert len(fake.pushes) in (1, 2)
    assert result.succeeded_adds == sent and len(synced_state(sync)) == sent
    assert "maria" in result.error_message and f"{sent} of 6" in result.error_message


def test_cancelling_a_finished_run_is_refused() -> None:
    run = SyncRunFactory(status=RunStatus.SUCCEEDED)

    with pytest.raises(SyncRunStateError, match="already succeeded"):
        sync_run_cancel(run=run, requested_by=None)


def test_retry_failed_resends_only_the_failed_users(fake: FakeConnector) -> None:
    pro_profile("ana@example.com")
    pro_profile("bad@example.com")
    sync = SyncFactory()
    fake.reject["bad@example.com"] = Rejection(retriable=True)
    failed_run = run_now(sync)
    pro_profile("new@example.com")  # joined since: not part of the retry
    fake.reject.clear()
    fake.forget_pushes()

    retry = sync_run_retry_failed(run=failed_run, requested_by=None)
    retry = sync_run_execute(run_id=retry.pk)

    assert retry.trigger == SyncRun.Trigger.RETRY and retry.retry_of == failed_run
    assert fake.pushed_values() == {"bad@example.com": True}
    assert retry.status == RunStatus.SUCCEEDED
    assert synced_state(sync) == {"ana@example.com": True, "bad@example.com": True}


def test_retry_uses_the_current_desired_membership(fake: FakeConnector) -> None:
    ana = pro_profile("ana@example.com")
    pro_profile("bob@example.com")
    sync = SyncFactory(options={"removal_guard_ratio": 1.0})
    run_now(sync)
    set_plan(ana, "free")
    fake.reject["ana@example.com"] = Rejection(retriable=True)
    failed_removal = run_now(sync)
    assert failed_removal.failed_removes == 1
    fake.reject.clear()
    fake.forget_pushes()

    run_now(sync, trigger=SyncRun.Trigger.RETRY, retry_of=failed_removal)

    assert fake.pushed_values() == {"ana@example.com": False}


def test_retry_of_a_run_without_failed_users_is_refused() -> None:
    run = SyncRunFactory(status=RunStatus.SUCCEEDED)
    SyncFailure.objects.create(run=run, operation=SyncFailure.Operation.SKIP, code="missing_identity", message="x")

    with pytest.raises(SyncRunStateError, match="no failed users"):
        sync_run_retry_failed(run=run, requested_by=None)


def test_frozen_sync_refuses_a_new_target_field_or_identity(fake: FakeConnector) -> None:
    pro_profile("ana@example.com")
    sync = SyncFactory(target_field="Pro_Users")
    run_now(sync)

    with pytest.raises(ValidationError) as error:
        sync_update(sync=sync, changes={"target_field": "Other", "identity_property": "$distinct_id"})

    messages = error.value.message_dict
    assert set(messages) == {"target_field", "identity_property"}
    assert "Create a new sync" in messages["target_field"][0]
    sync.refresh_from_db()
    assert sync.target_field == "Pro_Users"


def test_unfrozen_sync_may_change_its_target_field() -> None:
    sync = SyncFactory(target_field="Pro_Users")

    sync_update(sync=sync, changes={"target_field": "Pro_Users_2"})

    sync.refresh_from_db()
    assert sync.target_field == "Pro_Users_2"


def test_losing_the_race_to_the_database_constraint_is_a_conflict(monkeypatch) -> None:
    from syncs import services

    sync = SyncFactory()
    active = SyncRunFactory(sync=sync, status=RunStatus.RUNNING)
    real = services.sync_active_run
    calls = iter([None])  # the pre-check misses the other run, as in a real race
    monkeypatch.setattr(services, "sync_active_run", lambda s: next(calls, None) or real(s))

    with pytest.raises(SyncRunConflict) as conflict:
        sync_run_request(sync=sync, trigger=SyncRun.Trigger.MANUAL)

    assert conflict.value.active_run == active
    assert SyncRun.objects.filter(sync=sync).count() == 1
