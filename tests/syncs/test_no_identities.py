"""A run where no member can be identified fails, saying which property and how many lack it."""

from __future__ import annotations

import pytest

from syncs.models import RunStatus
from tests.factories import ProfileFactory, SyncFactory
from tests.syncs.fakes import FakeConnector, fake_connector_fixture, pro_profile, run_now  # noqa: F401

pytestmark = pytest.mark.django_db


def test_a_property_no_member_has_fails_the_run_with_no_identities(fake: FakeConnector) -> None:
    for _ in range(3):
        pro_profile("someone@example.com")

    run = run_now(SyncFactory(identity_property="Email"))

    assert (run.status, run.error_code, run.skipped_users) == (RunStatus.FAILED, "no_identities", 3)
    assert "of its 3 members, 3 lack the identity property 'Email'" in run.error_message
    assert "Nothing was sent" in run.error_message
    assert fake.pushes == []


def test_members_with_unusable_values_are_counted_apart(fake: FakeConnector) -> None:
    pro_profile(None)
    pro_profile("not-an-email")
    pro_profile("also wrong")

    run = run_now(SyncFactory())

    assert run.error_code == "no_identities"
    assert "of its 3 members, 1 lacks the identity property '$email' and 2 have values the destination rejects" in run.error_message


def test_some_members_without_the_property_do_not_fail_the_run(fake: FakeConnector) -> None:
    pro_profile(None)
    pro_profile("ana@example.com")
    run = run_now(SyncFactory())
    assert (run.status, run.skipped_users) == (RunStatus.SUCCEEDED, 1)


def test_an_empty_cohort_is_not_a_failure(fake: FakeConnector) -> None:
    assert run_now(SyncFactory()).status == RunStatus.SUCCEEDED


@pytest.mark.parametrize("identity", ["$distinct_id", "distinct_id"])
def test_distinct_id_is_the_profiles_id_with_or_without_the_dollar(fake: FakeConnector, identity: str) -> None:
    ProfileFactory(distinct_id="ana@example.com", properties={"plan": "pro"})

    run = run_now(SyncFactory(identity_property=identity))

    assert (run.status, run.succeeded_adds) == (RunStatus.SUCCEEDED, 1)
    assert fake.pushed_values() == {"ana@example.com": True}


def test_only_unusable_values_are_said_so(fake: FakeConnector) -> None:
    pro_profile("not-an-email")
    pro_profile("also wrong")
    run = run_now(SyncFactory())
    assert run.error_code == "no_identities"
    assert "of its 2 members, all have values the destination rejects for '$email'" in run.error_message
