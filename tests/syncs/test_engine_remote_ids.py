"""A connector may report the destination's own id for a user (Marketo's lead id): the
ledger keeps it in the synced state and the user's later changes carry it back."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from destinations.base import MembershipChange, PushOutcome, SyncTarget
from syncs.models import RunStatus, SyncedMember
from tests.factories import SyncFactory
from tests.syncs.fakes import (
    FakeConnector,
    fake_connector_fixture,  # noqa: F401  (the `fake` fixture)
    pro_profile,
    run_now,
    set_plan,
)

pytestmark = pytest.mark.django_db


class IdReportingConnector(FakeConnector):
    uses_remote_ids = True

    def push(self, target: SyncTarget, changes: Sequence[MembershipChange]) -> list[PushOutcome]:
        outcomes = super().push(target, changes)
        # Adds report an id; removals report none (the stored one is kept).
        return [
            PushOutcome(o.identity, o.ok, o.code, o.message, o.retriable,
                        remote_id=f"lead-{o.identity.split('@')[0]}" if c.is_member and o.ok else "")
            for o, c in zip(outcomes, changes, strict=True)
        ]


@pytest.fixture
def reporting():
    from destinations.registry import override_connector

    connector = IdReportingConnector()
    with override_connector(lambda config: connector):
        yield connector


def _remote_ids(sync) -> dict[str, str]:
    return dict(SyncedMember.objects.filter(sync=sync).values_list("identity_value", "remote_id"))


def test_remote_ids_are_kept_and_handed_back_with_later_changes(reporting: IdReportingConnector) -> None:
    ann, bob = pro_profile("ann@example.com"), pro_profile("bob@example.com")
    sync = SyncFactory(options={"removal_guard_ratio": 1})

    first = run_now(sync)

    assert first.status == RunStatus.SUCCEEDED
    assert [c.remote_id for c in reporting.pushed] == ["", ""]  # nothing known yet
    assert _remote_ids(sync) == {"ann@example.com": "lead-ann", "bob@example.com": "lead-bob"}

    set_plan(ann, "free")
    reporting.forget_pushes()
    leave = run_now(sync)

    assert leave.status == RunStatus.SUCCEEDED
    assert [(c.identity, c.is_member, c.remote_id) for c in reporting.pushed] == [
        ("ann@example.com", False, "lead-ann")]
    # The removal reported no id: the one stored stays.
    assert _remote_ids(sync)["ann@example.com"] == "lead-ann"
    assert SyncedMember.objects.get(sync=sync, identity_value="ann@example.com").is_member is False
    assert bob.pk


def test_connectors_that_do_not_use_remote_ids_are_handed_none(fake: FakeConnector) -> None:
    pro_profile("ann@example.com")
    sync = SyncFactory()

    run_now(sync)

    assert [c.remote_id for c in fake.pushed] == [""]
    assert _remote_ids(sync) == {"ann@example.com": ""}
