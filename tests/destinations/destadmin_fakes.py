"""A scripted connector for admin, service and command tests (no HTTP)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from destinations.base import (
    ConnectionReport,
    DestinationConfig,
    FieldInfo,
    SyncTarget,
    TargetCheck,
    TargetStatus,
)
from destinations.registry import override_connector

FIELDS = (
    FieldInfo(name="SubscriberKey", label="SubscriberKey", type="Text", is_target_compatible=False),
    FieldInfo(name="Cohort_Pro", label="Cohort Pro", type="Boolean", is_target_compatible=True),
)


class FakeConnector:
    """Answers check_connection() from a script; records the configs it was built with."""

    def __init__(self, config: DestinationConfig, *, outcome: Exception | ConnectionReport) -> None:
        self.config = config
        self.outcome = outcome

    def check_connection(self) -> ConnectionReport:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome

    def list_target_fields(self) -> list[FieldInfo]:
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return list(self.outcome.fields)

    def check_targets(self, targets: Sequence[SyncTarget]) -> list[TargetCheck]:
        """EXISTS for a usable field of the report, REFUSED for any other name."""
        usable = {f.name.lower() for f in self.list_target_fields() if f.is_target_compatible}
        return [
            TargetCheck(TargetStatus.EXISTS, f"Field '{t.field}' exists.")
            if t.field.lower() in usable
            else TargetCheck(TargetStatus.REFUSED, f"The destination has no usable field '{t.field}'.")
            for t in targets
        ]


@contextmanager
def fake_connector(
    outcome: Exception | ConnectionReport | None = None,
) -> Iterator[list[DestinationConfig]]:
    """Every connector_for() returns a FakeConnector; yields the configs it was given."""
    if outcome is None:
        outcome = ConnectionReport(ok=True, summary="read 2 columns of COHORTS_DE", fields=FIELDS)
    configs: list[DestinationConfig] = []

    def factory(config: DestinationConfig) -> FakeConnector:
        configs.append(config)
        return FakeConnector(config, outcome=outcome)

    with override_connector(factory):  # type: ignore[arg-type]
        yield configs
