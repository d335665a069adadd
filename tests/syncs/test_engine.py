"""The engine's core loop: plan against the synced state, push, record only what was acknowledged."""

from __future__ import annotations

import pytest

from syncs.models import DISTINCT_ID_IDENTITY, RunStatus, SyncFailure
from tests.factories import ProfileFactory, SyncFactory
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


def test_first_run_sends_every_member_as_true(fake: FakeConnector) -> None:
    pro_profile("ana@example.com")
    pro_profile("Bob@Example.com ")
    ProfileFactory(properties={"$email": "free@example.com", "plan": "free"})
    sync = SyncFactory()

    run = run_now(sync)

    assert run.status == RunStatus.SUCCEEDED
    assert fake.pushed_values() == {"ana@example.com": True, "bob@example.com": True}
    assert synced_state(sync) == {"ana@example.com": True, "bob@example.com": True}
    assert (run.planned_adds, run.succeeded_adds, run.attempted_adds) == (2, 2, 2)
    assert run.api_calls == 2  # one validation, one push of two
    assert run.finished_at is not None and run.duration_seconds is not None


def test_second_run_without_changes_makes_no_push(fake: FakeConnector) -> None:
    pro_profile("ana@example.com")
    sync = SyncFactory()
    run_now(sync)
    fake.forget_pushes()

    run = run_now(sync)

    assert run.status == RunStatus.SUCCEEDED
    assert fake.pushes == []
    assert len(fake.validations) == 1
    assert (run.planned_adds, run.planned_removes) == (0, 0)


def test_joins_are_sent_true_and_leaves_false(fake: FakeConnector) -> None:
    ana = pro_profile("ana@example.com")
    pro_profile("bob@example.com")
    carol = ProfileFactory(properties={"$email": "carol@example.com", "plan": "free"})
    sync = SyncFactory()
    run_now(sync)
    fake.forget_pushes()

    set_plan(ana, "free")
    set_plan(carol, "pro")
    run = run_now(sync)

    assert fake.pushed_values() == {"carol@example.com": True, "ana@example.com": False}
    assert synced_state(sync) == {
        "ana@example.com": False,
        "bob@example.com": True,
        "carol@example.com": True,
    }
    assert (run.succeeded_adds, run.succeeded_removes) == (1, 1)


def test_rejected_users_are_recorded_never_synced_and_planned_again(fake: FakeConnector) -> None:
    pro_profile("ana@example.com")
    bad = pro_profile("bad@example.com")
    sync = SyncFactory()
    fake.reject["bad@example.com"] = Rejection(code="1003", message="Value for field is invalid")

    run = run_now(sync)

    assert run.status == RunStatus.PARTIAL
    assert (run.succeeded_adds, run.failed_adds) == (1, 1)
    assert "1003" in run.error_message and run.error_code == "1003"
    failure = SyncFailure.objects.get(run=run)
    assert (failure.identity_value, failure.operation, failure.code) == ("bad@example.com", "add", "1003")
    assert failure.profile_id == bad.pk and failure.distinct_id == bad.distinct_id
    assert synced_state(sync) == {"ana@example.com": True}

    fake.forget_pushes()
    fake.reject.clear()
    second = run_now(sync)
    assert fake.pushed_values() == {"bad@example.com": True}
    assert second.status == RunStatus.SUCCEEDED
    assert synced_state(sync) == {"ana@example.com": True, "bad@example.com": True}


def test_a_run_where_every_user_failed_is_failed_not_succeeded(fake: FakeConnector) -> None:
    pro_profile("ana@example.com")
    sync = SyncFactory()
    fake.reject["ana@example.com"] = Rejection()

    run = run_now(sync)

    assert run.status == RunStatus.FAILED
    assert run.failed_adds == 1


def test_two_profiles_sharing_an_email_are_sent_once(fake: FakeConnector) -> None:
    pro_profile("ana@example.com")
    pro_profile("ANA@example.com")
    sync = SyncFactory()

    run = run_now(sync)

    assert [c.identity for c in fake.pushed] == ["ana@example.com"]
    assert run.planned_adds == 1


def test_members_without_or_with_invalid_identity_are_skipped_per_user(fake: FakeConnector) -> None:
    pro_profile("ana@example.com")
    missing = pro_profile(None)
    blank = pro_profile("   ")
    invalid = pro_profile("not-an-email")
    sync = SyncFactory()

    run = run_now(sync)

    assert run.status == RunStatus.SUCCEEDED
    assert run.skipped_users == 3
    assert fake.pushed_values() == {"ana@example.com": True}
    skips = {f.profile_id: f for f in SyncFailure.objects.filter(run=run)}
    assert {p.pk for p in (missing, blank, invalid)} == set(skips)
    assert skips[missing.pk].code == "missing_identity"
    assert "$email" in skips[missing.pk].message
    assert skips[invalid.pk].code == "invalid_email"
    assert all(f.operation == SyncFailure.Operation.SKIP for f in skips.values())


def test_skip_rows_are_capped_but_every_skip_is_counted(fake: FakeConnector, settings) -> None:
    settings.COHORTSYNC_SKIP_ROWS_PER_RUN = 2
    for _ in range(5):
        pro_profile(None)
    sync = SyncFactory()

    run = run_now(sync)

    assert run.skipped_users == 5
    assert SyncFailure.objects.filter(run=run).count() == 2
    assert run.plan_sample["skipped_recorded"] == 2


def test_distinct_id_identity(fake: FakeConnector) -> None:
    fake.normalize_identity = lambda raw: str(raw)  # type: ignore[method-assign]
    profile = pro_profile("ana@example.com")
    sync = SyncFactory(identity_property=DISTINCT_ID_IDENTITY)

    run_now(sync)

    assert fake.pushed_values() == {profile.distinct_id: True}


def test_the_profile_properties_the_connector_asks_for_travel_with_the_change(fake: FakeConnector) -> None:
    pro_profile("ana@example.com", country="PT", secret="no")
    fake.properties_wanted = ("country", "plan")
    sync = SyncFactory()

    run_now(sync)

    assert fake.pushed[0].properties == {"country": "PT", "plan": "pro"}


def test_changes_carry_no_properties_unless_the_connector_asks(fake: FakeConnector) -> None:
    pro_profile("ana@example.com", country="PT")

    run_now(SyncFactory())

    assert fake.pushed[0].properties is None


def test_changes_go_in_connector_sized_batches_with_concurrency(fake: FakeConnector) -> None:
    for n in range(7):
        pro_profile(f"user{n}@example.com")
    fake.batch, fake.concurrency = 3, 2
    sync = SyncFactory()

    run = run_now(sync)

    assert sorted(len(batch) for batch in fake.pushes) == [1, 3, 3]
    assert run.succeeded_adds == 7 and len(synced_state(sync)) == 7


def test_target_validation_failure_fails_the_run_before_sending(fake: FakeConnector) -> None:
    from destinations.errors import TargetValidationError

    pro_profile("ana@example.com")
    sync = SyncFactory(target_field="Missing")
    fake.validation_error = TargetValidationError(
        "The data extension has no column 'Missing'.", code="target_missing"
    )

    run = run_now(sync)

    assert run.status == RunStatus.FAILED
    assert run.error_code == "target_missing"
    assert "no column 'Missing'" in run.error_message and "Nothing was sent" in run.error_message
    assert fake.pushes == []
    assert synced_state(sync) == {}


def test_transient_batch_failure_becomes_retriable_failures_and_the_run_continues(fake: FakeConnector) -> None:
    for n in range(4):
        pro_profile(f"user{n}@example.com")
    fake.transient_errors = 1
    sync = SyncFactory()

    run = run_now(sync)

    assert run.status == RunStatus.PARTIAL
    assert (run.succeeded_adds, run.failed_adds) == (2, 2)
    failures = list(SyncFailure.objects.filter(run=run))
    assert len(failures) == 2 and all(f.retriable and f.code == "503" for f in failures)
    assert len(synced_state(sync)) == 2


def test_destination_down_for_many_batches_stops_the_run(fake: FakeConnector) -> None:
    for n in range(14):
        pro_profile(f"user{n:02d}@example.com")
    fake.transient_errors = 100
    sync = SyncFactory()

    run = run_now(sync)

    assert run.status == RunStatus.FAILED
    assert "unavailable" in run.error_message
    assert len(fake.pushes) == 5  # stopped after five failing batches, two users left unsent
    assert run.failed_adds == 10 and run.planned_adds == 14


def test_quota_exhausted_stops_the_run_as_partial_with_resume_time(fake: FakeConnector) -> None:
    from destinations.errors import QuotaExhaustedError

    for n in range(6):
        pro_profile(f"user{n}@example.com")
    fake.fail_batches = {2}
    fake.batch_error = QuotaExhaustedError(
        "Marketo's daily API quota is used up.", code="607", resumes_at="2026-11-24 00:00 CST"
    )
    sync = SyncFactory()

    run = run_now(sync)

    assert run.status == RunStatus.PARTIAL
    assert run.error_code == "607"
    assert "2026-11-24 00:00 CST" in run.error_message
    assert len(fake.pushes) == 2  # the third batch was never sent
    assert run.succeeded_adds == 2 and run.failed_adds == 2
    assert len(synced_state(sync)) == 2


def test_authentication_error_mid_run_fails_it_and_keeps_acknowledged_users(fake: FakeConnector) -> None:
    from destinations.errors import AuthenticationError

    for n in range(6):
        pro_profile(f"user{n}@example.com")
    fake.fail_batches = {2}
    fake.batch_error = AuthenticationError("SFMC refused the client id and secret.", code="401")
    sync = SyncFactory()

    run = run_now(sync)

    assert run.status == RunStatus.FAILED
    assert run.error_message.startswith("SFMC refused the client id and secret.")
    assert len(synced_state(sync)) == 2
    fake.fail_batches = set()
    fake.forget_pushes()
    run_now(sync)
    assert len(fake.pushed) == 4  # only the users not acknowledged before


def test_invalid_cohort_rules_fail_the_run_with_a_message(fake: FakeConnector) -> None:
    sync = SyncFactory(cohort__rules={"all": [{"property": "plan", "op": "bogus", "value": 1}]})

    run = run_now(sync)

    assert run.status == RunStatus.FAILED
    assert run.error_code == "invalid_rules"
    assert sync.cohort.name in run.error_message


def test_one_time_export_sends_members_and_never_clears_leavers(fake: FakeConnector) -> None:
    from syncs.models import Sync

    ana = pro_profile("ana@example.com")
    pro_profile("bob@example.com")
    sync = SyncFactory(mode=Sync.Mode.ONE_TIME)
    run_now(sync)
    set_plan(ana, "free")
    pro_profile("carol@example.com")
    fake.forget_pushes()

    run = run_now(sync)

    assert fake.pushed_values() == {"carol@example.com": True}
    assert run.planned_removes == 0
    assert synced_state(sync)["ana@example.com"] is True


def _six_members_and_a_slow_validation(fake: FakeConnector, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Three batches of two on two connections, and a validation that takes 0.3 s; returns
    the events seen: "read" (a batch converted), "validated", "push"."""
    import time

    from syncs.engine import units

    for i in range(6):
        pro_profile(f"user{i}@example.com")
    fake.batch, fake.concurrency = 2, 2
    events: list[str] = []

    real_validate, real_changes_for, real_push = fake.validate_target, units._ChangeReader.changes, fake.push

    def validate(target):  # type: ignore[no-untyped-def]
        time.sleep(0.3)  # SFMC creating the column, say
        events.append("validated")
        real_validate(target)

    def changes_for(reader, batch):  # type: ignore[no-untyped-def]
        events.append("read")
        return real_changes_for(reader, batch)

    def push(target, changes):  # type: ignore[no-untyped-def]
        events.append("push")
        return real_push(target, changes)

    monkeypatch.setattr(fake, "validate_target", validate)
    monkeypatch.setattr(units._ChangeReader, "changes", changes_for)
    monkeypatch.setattr(fake, "push", push)
    return events


def test_the_first_batches_are_read_while_the_target_is_validated_and_sent_after(
    fake: FakeConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = _six_members_and_a_slow_validation(fake, monkeypatch)
    sync = SyncFactory()

    run = run_now(sync)

    assert run.status == RunStatus.SUCCEEDED and run.succeeded_adds == 6
    validated = events.index("validated")
    assert events[:validated] == ["read", "read"]  # one batch per connection, no more
    assert "push" not in events[:validated]


def test_batches_read_ahead_are_dropped_unsent_when_validation_fails(
    fake: FakeConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    from destinations.errors import TargetValidationError

    events = _six_members_and_a_slow_validation(fake, monkeypatch)
    sync = SyncFactory()
    fake.validation_error = TargetValidationError("The field 'cohortPro' does not exist.", code="missing_field")

    run = run_now(sync)

    assert run.status == RunStatus.FAILED and run.error_code == "missing_field"
    assert run.error_message.endswith("Nothing was sent.")
    assert events == ["read", "read", "validated"] and fake.pushes == []
    assert not SyncFailure.objects.filter(run=run).exists() and synced_state(sync) == {}
