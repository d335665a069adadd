"""A scriptable in-memory connector for engine tests, installed with override_connector."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from destinations.base import (
    ConnectionReport,
    Connector,
    DestinationConfig,
    FieldInfo,
    MembershipChange,
    PushOutcome,
    SendPlan,
    SyncTarget,
    TargetCheck,
    TargetStatus,
    UnitKind,
)
from destinations.errors import DestinationError, InvalidIdentityError, TransientError
from destinations.registry import override_connector


@dataclass(frozen=True)
class Rejection:
    code: str = "1003"
    message: str = "Value for field is invalid"
    retriable: bool = False


class WorkerKilled(BaseException):
    """Simulates the worker process dying mid-run: nothing in the engine may catch it."""


class FakeConnector(Connector):
    """Implements destinations.base.Connector and records everything it is asked to do.

    Knobs (set attributes between runs):
      batch: changes per push; concurrency: batches sent at once;
      reject: identity -> Rejection (per-user ok=False outcome);
      fail_batches: push call numbers (1-based) that raise `batch_error`;
      transient_errors: the next N push calls raise TransientError;
      raise_on_push: an exception raised by the push call number `raise_on_push_call`;
      validation_error: raised by validate_target;
      properties_wanted: the profile properties asked for with each change.
    `destination` holds what was acknowledged: identity -> is_member.
    """

    def __init__(self, config: DestinationConfig | None = None) -> None:
        self.config = config
        self.batch = 2
        self.concurrency = 1
        self.reject: dict[str, Rejection] = {}
        self.fail_batches: set[int] = set()
        self.batch_error: DestinationError = TransientError("The destination timed out.", code="timeout")
        self.transient_errors = 0
        self.raise_on_push: BaseException | None = None
        self.raise_on_push_call = 1
        self.validation_error: DestinationError | None = None
        self.properties_wanted: tuple[str, ...] = ()
        self.pushes: list[list[MembershipChange]] = []
        self.validations: list[SyncTarget] = []
        self.destination: dict[str, bool] = {}
        self._calls = 0
        self._lock = threading.Lock()

    # --- Connector protocol -----------------------------------------------------------

    @property
    def api_calls(self) -> int:
        return self._calls

    def check_connection(self) -> ConnectionReport:
        return ConnectionReport(ok=True, summary="fake")

    def list_target_fields(self) -> list[FieldInfo]:
        return []

    def validate_target(self, target: SyncTarget) -> None:
        with self._lock:
            self._calls += 1
            self.validations.append(target)
        if self.validation_error is not None:
            raise self.validation_error

    def check_targets(self, targets: Sequence[SyncTarget]) -> list[TargetCheck]:
        if self.validation_error is not None:
            return [TargetCheck(TargetStatus.REFUSED, self.validation_error.message) for _ in targets]
        return [TargetCheck(TargetStatus.EXISTS, f"Field '{t.field}': fake.") for t in targets]

    def normalize_identity(self, raw_value: Any) -> str:
        value = str(raw_value).strip().lower()
        if "@" not in value:
            raise InvalidIdentityError(f"'{value}' is not an email address.", code="invalid_email")
        return value

    def profile_properties(self, target: SyncTarget) -> Sequence[str]:
        return self.properties_wanted

    def send_plan(self, total_changes: int) -> SendPlan:
        return SendPlan(UnitKind.BATCHES, batch_size=self.batch, concurrency=self.concurrency)

    def push(self, target: SyncTarget, changes: Sequence[MembershipChange]) -> list[PushOutcome]:
        with self._lock:
            self._calls += 1
            self.pushes.append(list(changes))
            call = len(self.pushes)
            transient = self.transient_errors > 0
            if transient:
                self.transient_errors -= 1
        if self.raise_on_push is not None and call == self.raise_on_push_call:
            raise self.raise_on_push
        if transient:
            raise TransientError("The destination answered 503 after 3 retries.", code="503")
        if call in self.fail_batches:
            raise self.batch_error
        outcomes = []
        for change in changes:
            rejection = self.reject.get(change.identity)
            if rejection is not None:
                outcomes.append(PushOutcome(change.identity, False, rejection.code, rejection.message, rejection.retriable))
                continue
            with self._lock:
                self.destination[change.identity] = change.is_member
            outcomes.append(PushOutcome(change.identity, True))
        return outcomes

    # --- Test helpers -----------------------------------------------------------------

    @property
    def pushed(self) -> list[MembershipChange]:
        return [change for batch in self.pushes for change in batch]

    def pushed_values(self) -> dict[str, bool]:
        return {change.identity: change.is_member for change in self.pushed}

    def forget_pushes(self) -> None:
        self.pushes.clear()
        self.validations.clear()


@pytest.fixture(name="fake")
def fake_connector_fixture() -> Iterator[FakeConnector]:
    """Every destination's connector is this FakeConnector for the duration of the test."""
    connector = FakeConnector()
    with override_connector(lambda config: connector):
        yield connector


# --- Engine test helpers -------------------------------------------------------------------


def pro_profile(email: str | None, **properties: Any) -> Any:
    """A profile in the default factory cohort (plan = pro)."""
    from tests.factories import ProfileFactory

    props: dict[str, Any] = {"plan": "pro", **properties}
    if email is not None:
        props["$email"] = email
    return ProfileFactory(properties=props)


def set_plan(profile: Any, plan: str) -> None:
    profile.properties = {**profile.properties, "plan": plan}
    profile.save()


def run_now(sync: Any, **options: Any) -> Any:
    """Create a run and execute it in this process, as `run_sync --inline` does."""
    from syncs.models import SyncRun
    from syncs.services import sync_run_create, sync_run_execute

    options.setdefault("trigger", SyncRun.Trigger.MANUAL)
    run = sync_run_create(sync=sync, **options)
    return sync_run_execute(run_id=run.pk)


def synced_state(sync: Any) -> dict[str, bool]:
    from syncs.models import SyncedMember

    return dict(SyncedMember.objects.filter(sync=sync).values_list("identity_value", "is_member"))
