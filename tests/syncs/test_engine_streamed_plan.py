"""First exports are planned one range of profile ids at a time and sent while the rest
is planned (PostgreSQL, where identities are taken as they are in SQL). Elsewhere the plan
is made whole first; the results must be the same either way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from destinations.base import PlainIdentity, SendPlan, UnitKind
from destinations.errors import QuotaExhaustedError
from destinations.registry import override_connector
from syncs.engine import planning, staging, units
from syncs.engine.ledger import RunLedger
from syncs.models import RunStatus, SyncFailure, SyncRun
from tests.factories import SyncFactory, SyncRunFactory
from tests.syncs.fakes import FakeConnector, pro_profile, run_now, synced_state

pytestmark = pytest.mark.django_db


class StreamingConnector(FakeConnector):
    """The fake, with plain identities the planner takes in SQL, and a send plan that is the
    same on either side of `threshold` (None: a batch size that follows the total, so the
    plan is never settled before it is complete)."""

    plain_identity = PlainIdentity(pattern=r"^[a-z0-9._-]+@[a-z0-9.-]+$", max_length=254)

    def __init__(self) -> None:
        super().__init__()
        self.threshold: int | None = 0
        self.events: list[str] = []
        # The run's planned_adds as recorded when each chunk starts being planned.
        self.planned_on_record: list[int] = []

    def send_plan(self, total_changes: int) -> SendPlan:
        if self.threshold is None:
            return SendPlan(UnitKind.BATCHES, batch_size=max(1, total_changes), concurrency=self.concurrency)
        size = self.batch if total_changes <= self.threshold else self.batch + 1
        return SendPlan(UnitKind.BATCHES, batch_size=size, concurrency=self.concurrency)

    def push(self, target: Any, changes: Any) -> Any:
        self.events.append("push")
        return super().push(target, changes)


@pytest.fixture(name="streaming")
def streaming_connector(monkeypatch: pytest.MonkeyPatch) -> Iterator[StreamingConnector]:
    connector = StreamingConnector()
    # Chunks of 2, then 3 profile ids, so a dozen profiles make several chunks.
    monkeypatch.setattr(planning, "FIRST_CHUNK_IDS", 2)
    monkeypatch.setattr(planning, "MAX_CHUNK_IDS", 3)
    # No batches beyond the concurrency: the next chunk is planned only once a batch is done.
    monkeypatch.setattr(units, "STREAM_RUNWAY_ROWS", 0)
    more = planning._FirstExportChunks.more

    def noted_more(chunks: planning._FirstExportChunks) -> bool:
        connector.planned_on_record.append(SyncRun.objects.get(pk=chunks._ledger.run.pk).planned_adds)
        planned = more(chunks)
        connector.events.append(f"plan:{planned}")
        return planned

    monkeypatch.setattr(planning._FirstExportChunks, "more", noted_more)
    with override_connector(lambda config: connector):
        yield connector


def _profiles() -> tuple[set[str], int]:
    """Members whose identities repeat across chunks; returns the identities to send and
    how many members have none."""
    for i in range(10):
        pro_profile(f"user{i}@example.com")
    pro_profile("User1@Example.COM")  # user1's lead again, through normalize_identity
    pro_profile("user2@example.com")  # user2 again, as it is
    pro_profile(None)  # no email
    pro_profile("not-an-email")
    return {f"user{i}@example.com" for i in range(10)}, 2


def test_a_first_export_is_pushed_while_it_is_planned_and_sends_each_identity_once(
    streaming: StreamingConnector,
) -> None:
    expected, skipped = _profiles()
    sync = SyncFactory()

    run = run_now(sync)

    assert run.status == RunStatus.SUCCEEDED
    pushed = [c.identity for c in streaming.pushed]
    assert sorted(pushed) == sorted(expected)  # each identity once, across chunks
    assert synced_state(sync) == dict.fromkeys(expected, True)
    assert (run.planned_adds, run.succeeded_adds, run.skipped_users) == (len(expected), len(expected), skipped)
    assert run.plan_sample["members"] == len(expected) + 2 + skipped
    assert SyncFailure.objects.filter(run=run, operation=SyncFailure.Operation.SKIP).count() == skipped
    plans = [i for i, event in enumerate(streaming.events) if event.startswith("plan")]
    if staging.plain_identity_supported():
        assert len(plans) > 3 and streaming.events[plans[-1]] == "plan:False"
        # The run's page follows the plan as it grows.
        recorded = streaming.planned_on_record
        assert recorded == sorted(recorded) and 0 < recorded[1] < recorded[-1] == len(expected)
        # Batches left before the last chunk was planned.
        assert streaming.events.index("push") < plans[-2]
    else:
        assert plans == []


def test_a_dry_run_of_a_first_export_is_planned_whole(streaming: StreamingConnector) -> None:
    expected, skipped = _profiles()
    sync = SyncFactory()

    run = run_now(sync, dry_run=True)

    assert run.status == RunStatus.SUCCEEDED
    assert streaming.pushes == []
    assert (run.planned_adds, run.skipped_users) == (len(expected), skipped)
    assert "push" not in streaming.events


@pytest.mark.parametrize("threshold", [5, 100, None])
def test_a_plan_streams_once_the_connector_sends_its_final_total_alike(
    streaming: StreamingConnector, threshold: int | None
) -> None:
    expected, _ = _profiles()
    sync = SyncFactory()
    streaming.threshold = threshold
    run = SyncRunFactory(sync=sync)
    try:
        plan = planning.plan_build(run=run, sync=sync, connector=streaming, ledger=RunLedger(run), stream=True)
        streamed = plan.streamed
        total_at_first = plan.total
        # Whatever it is handed, send_plan() answers as it would for the final total.
        bound = plan.total_at_most
        while plan.more():
            pass
    finally:
        staging.staging_drop()

    assert plan.total == len(expected)
    assert bound >= plan.total
    if threshold is not None:
        assert (bound > threshold) == (plan.total > threshold)
    if not staging.plain_identity_supported() or threshold is None:
        assert not streamed and total_at_first == len(expected)
    elif threshold == 5:
        assert streamed and 5 < total_at_first < len(expected)
    else:
        assert streamed and 0 < total_at_first < len(expected)


def test_a_streamed_export_stopped_early_loses_nothing(streaming: StreamingConnector) -> None:
    expected, _ = _profiles()
    sync = SyncFactory()
    streaming.raise_on_push = QuotaExhaustedError("The daily quota is used up.", code="607")
    streaming.raise_on_push_call = 3

    stopped = run_now(sync)
    streaming.raise_on_push = None
    finished = run_now(sync)

    assert stopped.status == RunStatus.PARTIAL and stopped.error_code == "607"
    assert 0 < stopped.succeeded_adds < len(expected)
    assert finished.status == RunStatus.SUCCEEDED
    assert stopped.succeeded_adds + finished.succeeded_adds == len(expected)
    assert synced_state(sync) == dict.fromkeys(expected, True)


def test_a_streamed_export_cancelled_early_says_how_much_was_planned_so_far(
    streaming: StreamingConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syncs.engine import runner

    expected, _ = _profiles()
    sync = SyncFactory()
    monkeypatch.setattr(runner, "_cancel_requested", lambda run: "push" in streaming.events)

    run = run_now(sync)

    assert run.status == RunStatus.CANCELLED
    if staging.plain_identity_supported():
        assert run.planned_adds < len(expected)
        assert f"changes were sent, of {run.planned_adds:,} planned so far" in run.error_message
    else:  # planned whole
        assert f"of {len(expected)} changes were sent" in run.error_message
