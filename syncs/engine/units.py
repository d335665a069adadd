"""Units: what the send loop hands to the connector, read from the staged plan.

A run's SendPlan says which: batches of changes (connector.push) or import files the
engine fills row by row (connector.push_file). Each unit knows how to send itself (in a
worker thread) and how to tell the ledger what came back (in the main thread); each
source says how many units may be in flight. The send loop (syncs.engine.sending) is the
same for both.

Batches: twice the send plan's concurrency are handed to threads. Each builds its payload
and waits for one of the transport's slots, so a slot freed by a finished request is taken
at once by a batch that is ready, instead of after the main thread noticed and a thread
built the next payload (0.3 s for an SFMC async job of 32,000 rows). Memory stays bounded:
an SFMC async batch is 32,000 users. Changes are read from the plan in reads of ~2,000 rows.

Files: what is in flight is file bytes, not users. The main thread fills each file from
the changes table (`add_many` takes rows until one would not fit, and says how many it
took), so files are cut by their real size, and remembers only the range of plan rows
(seq) the file holds; the ledger acknowledges the range in one statement, except the
users the import refused.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cohorts.models import Profile
from destinations.base import (
    Connector,
    ImportFile,
    MembershipChange,
    PushOutcome,
    SendPlan,
    SyncTarget,
    UnitKind,
)
from syncs.engine import staging
from syncs.engine.ledger import FileRange, RunLedger
from syncs.engine.staging import StagedChange, staging_pages
from syncs.selectors import synced_remote_ids

# A streamed plan (first exports) is planned further when fewer than this many of its
# planned users are left to hand out; they are all handed out first (beyond the usual
# 2 x concurrency batches), so the destination is kept busy while the main thread plans.
STREAM_RUNWAY_ROWS = 10_000
# Rows read per query when filling files.
FILE_READ_ROWS = 20_000


class StreamedPlan(Protocol):
    """A plan still being made (syncs.engine.planning.Plan with `more`)."""

    @property
    def total(self) -> int: ...

    def more(self) -> bool: ...


class Unit(Protocol):
    def send(self) -> list[PushOutcome]:
        """Send it (in a worker thread)."""
        ...

    def sent(self, ledger: RunLedger, outcomes: list[PushOutcome]) -> None: ...

    def failed(self, ledger: RunLedger, exc: BaseException) -> None: ...


class UnitSource(Protocol):
    # Worker threads the loop needs: the most units ever in flight.
    threads: int

    def next(self) -> Unit | None:
        """The next unit of the plan, or None when everything was handed out."""
        ...

    def in_flight_limit(self) -> int: ...


@dataclass(frozen=True, slots=True)
class _Batch:
    connector: Connector
    target: SyncTarget
    rows: list[StagedChange]
    changes: list[MembershipChange]

    def send(self) -> list[PushOutcome]:
        return self.connector.push(self.target, self.changes)

    def sent(self, ledger: RunLedger, outcomes: list[PushOutcome]) -> None:
        ledger.batch_sent(self.rows, outcomes)

    def failed(self, ledger: RunLedger, exc: BaseException) -> None:
        ledger.batch_failed(self.rows, exc)


@dataclass(frozen=True, slots=True)
class _File:
    connector: Connector
    target: SyncTarget
    file: ImportFile
    span: FileRange

    def send(self) -> list[PushOutcome]:
        return self.connector.push_file(self.target, self.file)

    def sent(self, ledger: RunLedger, outcomes: list[PushOutcome]) -> None:
        ledger.file_sent(self.span, outcomes)

    def failed(self, ledger: RunLedger, exc: BaseException) -> None:
        ledger.file_failed(self.span, exc)


class _ChangeReader:
    """What a connector is handed with each change besides identity and membership: the
    profile properties it asked for, the remote ids the synced state keeps."""

    def __init__(self, *, connector: Connector, target: SyncTarget, sync_id: int) -> None:
        self.properties = tuple(connector.profile_properties(target))
        self.remote_ids = connector.uses_remote_ids
        self.sync_id = sync_id

    def remote_ids_of(self, identities: Sequence[str]) -> Mapping[str, str]:
        return synced_remote_ids(sync_id=self.sync_id, identities=identities) if self.remote_ids else {}

    def changes(self, batch: list[StagedChange]) -> list[MembershipChange]:
        if not self.properties and not self.remote_ids:
            return [MembershipChange(identity=c.identity, is_member=c.is_member) for c in batch]
        properties: dict[int, dict[str, Any]] = {}
        if self.properties:
            ids = [c.profile_id for c in batch if c.profile_id]
            properties = {
                pk: {key: props.get(key) for key in self.properties if isinstance(props, dict) and key in props}
                for pk, props in Profile.objects.filter(pk__in=ids).values_list("pk", "properties")
            }
        remote_ids = self.remote_ids_of([c.identity for c in batch])
        return [
            MembershipChange(
                identity=c.identity,
                is_member=c.is_member,
                properties=properties.get(c.profile_id) if self.properties and c.profile_id else None,
                remote_id=remote_ids.get(c.identity, ""),
            )
            for c in batch
        ]


class BatchUnits:
    """The plan's batches in order. A streamed plan is planned further when its planned
    changes run out. Batches may be read ahead (the runner does while the target is still
    being validated: reading and converting a 32,000-row batch is most of what precedes
    its request) and are handed out first."""

    def __init__(
        self,
        *,
        connector: Connector,
        target: SyncTarget,
        sync_id: int,
        send_plan: SendPlan,
        streamed: StreamedPlan | None,
    ) -> None:
        self.batch_size = send_plan.batch_size
        self.concurrency = send_plan.concurrency
        # Enough to keep every slot busy while the main thread writes, few enough to bound memory.
        self.handed_out = 2 * send_plan.concurrency
        self.threads = self.handed_out
        # Batches of thousands (SFMC async) take seconds each: no runway beyond them.
        self._runway = STREAM_RUNWAY_ROWS // self.batch_size
        self.planning = streamed is not None
        self.handed_rows = 0
        self._connector, self._target = connector, target
        self._streamed = streamed
        self._reader = _ChangeReader(connector=connector, target=target, sync_id=sync_id)
        self._ahead: deque[_Batch] = deque()
        self._pages = iter(
            staging_pages(page_size=self.batch_size, more=self._plan_more if streamed is not None else None)
        )

    def _plan_more(self) -> bool:
        self.planning = self._streamed is not None and self._streamed.more()
        return self.planning

    @property
    def running_low(self) -> bool:
        """A streamed plan with fewer than STREAM_RUNWAY_ROWS planned users left to hand out:
        the next batches taken will plan another chunk."""
        return (
            self.planning and self._streamed is not None
            and self._streamed.total - self.handed_rows < STREAM_RUNWAY_ROWS
        )

    def in_flight_limit(self) -> int:
        # When the next chunk is about to be planned, what is planned goes out first.
        return self.handed_out + self._runway if self.running_low else self.handed_out

    def _read(self) -> _Batch | None:
        rows = next(self._pages, None)
        if rows is None:
            return None
        return _Batch(self._connector, self._target, rows, self._reader.changes(rows))

    def read_ahead(self, *, until: Callable[[], bool]) -> None:
        """Read up to `concurrency` batches ahead, stopping as soon as `until()` is true."""
        while len(self._ahead) < self.concurrency and not until():
            batch = self._read()
            if batch is None:
                return
            self._ahead.append(batch)

    def next(self) -> _Batch | None:
        batch = self._ahead.popleft() if self._ahead else self._read()
        if batch is not None:
            self.handed_rows += len(batch.rows)
        return batch


class FileUnits:
    """Every change of the plan, in files cut where the connector's file says it is full.
    Only as many files as are sent at once are filled: files wait for nobody."""

    def __init__(
        self,
        *,
        connector: Connector,
        target: SyncTarget,
        sync_id: int,
        send_plan: SendPlan,
        streamed: StreamedPlan | None,
    ) -> None:
        self.threads = send_plan.concurrency
        self._connector, self._target = connector, target
        self._reader = _ChangeReader(connector=connector, target=target, sync_id=sync_id)
        self._files = self._filled(streamed.more if streamed is not None else None)

    def in_flight_limit(self) -> int:
        return self.threads

    def next(self) -> _File | None:
        return next(self._files, None)

    def _new(self, file: ImportFile, span: FileRange) -> _File:
        return _File(self._connector, self._target, file, span)

    def _filled(self, more: Callable[[], bool] | None) -> Iterator[_File]:
        new_file = lambda: self._connector.new_file(self._target)  # noqa: E731
        file, first, last, adds, removes = new_file(), 0, 0, 0, 0
        reads = staging.staging_reads(
            lambda after, limit: staging.staging_changes_rows(after_seq=after, limit=limit),
            limit=FILE_READ_ROWS, seq=lambda row: row[0], more=more,
        )
        for rows in reads:
            pairs = [(identity, is_member) for _, identity, is_member in rows]
            remote_ids = self._reader.remote_ids_of([identity for identity, _ in pairs]) if self._reader.remote_ids else None
            at = 0
            while at < len(rows):
                taken = file.add_many(pairs[at:] if at else pairs, remote_ids)
                if taken:
                    if not adds and not removes:
                        first = rows[at][0]
                    last = rows[at + taken - 1][0]
                    members = sum(1 for _, is_member in pairs[at:at + taken] if is_member)
                    adds, removes = adds + members, removes + taken - members
                    at += taken
                if at < len(rows):  # the file is full
                    yield self._new(file, FileRange(first, last, adds, removes))
                    file, adds, removes = new_file(), 0, 0
        if adds or removes:
            yield self._new(file, FileRange(first, last, adds, removes))


def units_for(
    *,
    connector: Connector,
    target: SyncTarget,
    sync_id: int,
    send_plan: SendPlan,
    streamed: StreamedPlan | None,
) -> BatchUnits | FileUnits:
    """The units a run with this send plan is sent in."""
    source = BatchUnits if send_plan.units == UnitKind.BATCHES else FileUnits
    return source(connector=connector, target=target, sync_id=sync_id, send_plan=send_plan, streamed=streamed)
