"""The contract between the sync engine and destination connectors.

The engine knows nothing about HTTP; a connector knows nothing about Django models beyond
the plain values handed to it. One connector class per destination kind implements
`Connector`; `destinations.registry.connector_for()` builds one from a Destination row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from destinations.errors import TargetValidationError


@dataclass(frozen=True)
class DestinationConfig:
    """Everything a connector needs to talk to one destination account (secret included)."""

    kind: str
    name: str
    client_id: str
    client_secret: str = field(repr=False)
    subdomain: str = ""
    account_id: str = ""
    auth_base_url: str = ""
    data_extension_key: str = ""
    key_column: str = ""
    attribute_set: str = ""
    base_url: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SyncTarget:
    """Where one sync writes membership, and how."""

    field: str
    identity_property: str
    # create_missing_field, member_value / exited_value (SFMC contacts), property_mapping ...
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MembershipChange:
    """One user's membership to write: True when joining, False when leaving."""

    identity: str
    is_member: bool
    # Only filled when the sync maps extra properties to destination columns.
    properties: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class PushOutcome:
    """What the destination said about one MembershipChange.

    `ok` means the destination acknowledged the write; only then does the engine move the
    synced state. `code` and `message` are the destination's own where it gave them.
    """

    identity: str
    ok: bool
    code: str = ""
    message: str = ""
    retriable: bool = False


@dataclass(frozen=True)
class FieldInfo:
    """A field/column/attribute the destination offers as a sync target."""

    name: str
    label: str
    type: str
    is_target_compatible: bool


class TargetStatus(StrEnum):
    EXISTS = "exists"  # the field exists and can hold the membership
    WILL_BE_CREATED = "will_be_created"  # missing, and the first run creates it
    REFUSED = "refused"  # missing or unusable: a run would fail on it
    UNCHECKED = "unchecked"  # the destination could not be asked


@dataclass(frozen=True)
class TargetCheck:
    """What the destination says about one sync target, without changing anything."""

    status: TargetStatus
    message: str

    @property
    def refused(self) -> bool:
        return self.status == TargetStatus.REFUSED


def target_checks(
    targets: Sequence[SyncTarget], describe: Callable[[SyncTarget], TargetCheck]
) -> list[TargetCheck]:
    """One check per target: what `describe` says, or REFUSED with the message of the
    TargetValidationError it raised (the message a run would fail with)."""
    checks = []
    for target in targets:
        try:
            checks.append(describe(target))
        except TargetValidationError as exc:
            checks.append(TargetCheck(TargetStatus.REFUSED, exc.message))
    return checks


@dataclass(frozen=True)
class ConnectionReport:
    ok: bool
    summary: str
    fields: Sequence[FieldInfo] = ()


@runtime_checkable
class Connector(Protocol):
    """Implemented once per destination kind (SFMC data extension, SFMC contacts, Marketo).

    push() must be safe to call from several threads at once: the engine pushes up to
    `max_concurrency` batches in parallel and the connector's rate limiter keeps the total
    within the destination's limits.

    Optional hooks, looked up with getattr by the engine:
    - `bulk_file(target)` -> a file object to fill (`add_many(rows)`: takes (identity,
      is_member) rows in order until one would not fit, returns how many it took; an empty
      file takes at least one), or None when this run should use push();
      `bulk_file_push(target, file)` then imports it and returns outcomes for the users that
      failed only (see syncs/engine/file_pushing.py; Marketo bulk import uses it).
    - `plain_identity_pattern` / `plain_identity_max_length`: a POSIX regex and length for
      raw values that normalize_identity() would return unchanged, so the planner can accept
      them in SQL without a Python call per member (syncs/engine/planning.py).
    - `size_threshold`: batch_size(total) (and how push() sends) is the same for every total
      at or below it, and for every total above it. A first export is then pushed while it
      is still being planned, once its size is known to be on one side; without it, the
      whole plan is made first.
    """

    @property
    def api_calls(self) -> int:
        """HTTP requests made by this connector instance so far (including auth, retries)."""
        ...

    @property
    def max_concurrency(self) -> int: ...

    def check_connection(self) -> ConnectionReport:
        """Obtain a token and read what syncs need. Raises DestinationError on failure."""
        ...

    def list_target_fields(self) -> list[FieldInfo]: ...

    def validate_target(self, target: SyncTarget) -> None:
        """Raise TargetValidationError (or create the field where allowed) before any push."""
        ...

    def check_targets(self, targets: Sequence[SyncTarget]) -> list[TargetCheck]:
        """Read-only twin of validate_target, one result per target (the schema is read
        once): EXISTS, WILL_BE_CREATED or REFUSED with the message validate_target would
        raise. Creates nothing. Problems of the whole destination (credentials, network,
        a missing data extension) raise a DestinationError."""
        ...

    def normalize_identity(self, raw_value: Any) -> str:
        """Return the value to send, or raise InvalidIdentityError with the reason."""
        ...

    def batch_size(self, total_changes: int) -> int:
        """How many changes to hand to one push() call for a run of this size."""
        ...

    def push(self, target: SyncTarget, changes: Sequence[MembershipChange]) -> list[PushOutcome]:
        """Write one batch; one outcome per change, in order.

        Per-user rejections come back as outcomes with ok=False. Problems that concern the
        whole run (auth, quota, a missing field) raise a DestinationError.
        """
        ...
