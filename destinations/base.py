"""The contract between the sync engine and destination connectors.

The engine knows nothing about HTTP; a connector knows nothing about Django models beyond
the plain values handed to it. One connector class per destination kind implements
`Connector` (subclassing it, to inherit the defaults of what is optional);
`destinations.registry.connector_for()` builds one from a Destination row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable

from destinations.errors import TargetValidationError


@dataclass(frozen=True)
class DestinationConfig:
    """Everything a connector needs to talk to one destination account (secret included).

    `settings` holds the kind's settings (its KindSpec.settings, by name); `options` its
    tuning options, parsed into the kind's KindOptions (a raw mapping is parsed by the
    connector)."""

    kind: str
    name: str
    client_id: str
    client_secret: str = field(repr=False)
    settings: Mapping[str, str] = field(default_factory=dict)
    options: Any = None

    def setting(self, name: str) -> str:
        return (self.settings.get(name) or "").strip()


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
    # The profile properties the connector asked for (Connector.profile_properties).
    properties: Mapping[str, Any] | None = None
    # The destination's own id for this user, as an earlier outcome reported it (only for
    # connectors with `uses_remote_ids`, and only where it is known): "" otherwise.
    remote_id: str = ""


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
    # The destination's own id for the user (a Marketo lead id), kept in the synced state
    # and handed back with this user's later changes (MembershipChange.remote_id).
    remote_id: str = ""


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


class UnitKind(StrEnum):
    """What the engine sends: batches of changes (push) or import files (push_file)."""

    BATCHES = "batches"
    FILES = "files"


@dataclass(frozen=True)
class SendPlan:
    """How a run of some size is sent: the answer to Connector.send_plan(total_changes).

    `batch_size`: changes per batch (files are cut by their real size instead; it is then
    the rows a file is expected to hold). `concurrency`: units sent at once.
    """

    units: UnitKind
    batch_size: int
    concurrency: int

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.concurrency < 1:
            raise ValueError(f"A send plan needs a batch size and a concurrency of at least 1: {self}.")


@dataclass(frozen=True)
class PlainIdentity:
    """Raw identity values normalize_identity() returns unchanged, as a POSIX regex and a
    maximum length: the planner takes such values as they are, in SQL, without a Python
    call per member (syncs/engine/planning.py)."""

    pattern: str
    max_length: int


class ImportFile(Protocol):
    """A file a connector imports whole (Marketo's bulk import), filled by the engine."""

    # Rows written (users in the file besides `invalid`).
    rows: int
    # (identity, why it was not written): users failed without being sent.
    invalid: list[tuple[str, str]]

    def add_many(self, rows: Sequence[tuple[str, bool]], remote_ids: Mapping[str, str] | None = None) -> int:
        """Take (identity, is_member) rows in order until one would not fit; returns how many
        were taken (an empty file takes at least one). `remote_ids`: identity -> the
        destination's id, where known (connectors with `uses_remote_ids`)."""
        ...


@runtime_checkable
class Connector(Protocol):
    """Implemented once per destination kind; connectors subclass it to inherit the
    defaults of the optional parts.

    push() and push_file() must be safe to call from several threads at once: the engine
    sends up to SendPlan.concurrency units in parallel, and the connector's rate limiter
    keeps the total within the destination's limits.
    """

    # Raw identity values that need no normalising (None: every value goes through
    # normalize_identity).
    plain_identity: ClassVar[PlainIdentity | None] = None
    # The connector reports PushOutcome.remote_id and wants it back with later changes.
    uses_remote_ids: ClassVar[bool] = False

    @property
    def api_calls(self) -> int:
        """HTTP requests made by this connector instance so far (including auth, retries)."""
        ...

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
        """Return the value to send, or raise InvalidIdentityError with the reason.
        Idempotent: a normalised value normalises to itself."""
        ...

    def send_plan(self, total_changes: int) -> SendPlan:
        """How a run of `total_changes` changes is sent. Pure: the same total always gets
        the same plan, nothing is remembered between calls, and it is a step function of
        the total (two totals with equal plans have that plan for every total between
        them, which lets a first export be sent while it is still being planned)."""
        ...

    def profile_properties(self, target: SyncTarget) -> Sequence[str]:
        """Profile properties to hand over with each change (MembershipChange.properties)."""
        return ()

    def push(self, target: SyncTarget, changes: Sequence[MembershipChange]) -> list[PushOutcome]:
        """Write one batch; one outcome per change, in order.

        Per-user rejections come back as outcomes with ok=False. Problems that concern the
        whole run (auth, quota, a missing field) raise a DestinationError.
        """
        ...

    def new_file(self, target: SyncTarget) -> ImportFile:
        """An empty import file (for send plans of UnitKind.FILES)."""
        raise NotImplementedError(f"{type(self).__name__} does not send files.")

    def push_file(self, target: SyncTarget, file: ImportFile) -> list[PushOutcome]:
        """Import one file; outcomes only for the users that failed (every other user of
        the file was acknowledged)."""
        raise NotImplementedError(f"{type(self).__name__} does not send files.")
