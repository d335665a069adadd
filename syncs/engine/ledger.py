"""The run ledger: every write to a run's record, its failure rows and the sync's synced
state, and every counter, in one place.

The engine (runner, planning, the send loop) tells the ledger what happened; the ledger
decides what is written and how it is counted. Outcomes of sent units are collected as
they arrive and written by flush(), in one short transaction per wait of the send loop:
acknowledged users move the synced state (and only they do), failed users get failure
rows, and the run's counters move by the same numbers. A run killed at any moment keeps
everything flushed before and loses nothing else: users whose outcome was not written are
planned again by the next run.

Every code and message is passed through the run's scrubber before it is stored: the
clients scrub their messages already, this is the last line of defence.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.db.models import F
from django.db.models.expressions import Combinable
from django.utils import timezone

from cohorts.models import Profile
from destinations.base import PushOutcome
from destinations.encryption import SecretDecryptionError
from destinations.errors import (
    MAX_CODE_LENGTH,
    DestinationError,
    UnexpectedResponseError,
    error_retriable,
)
from destinations.scrubbing import Scrubber
from syncs import codes
from syncs.engine import staging
from syncs.engine.staging import StagedChange
from syncs.models import RunPlanChunk, RunStatus, SyncedMember, SyncFailure, SyncRun
from syncs.run_events import run_finished_notify
from syncs.workers import worker_identity

if TYPE_CHECKING:
    from syncs.engine.planning import Plan

# Rows per INSERT of failure rows.
FAILURE_ROWS_PER_INSERT = 2000
# Users per RunPlanChunk row: ~250 KB of identities, the most the plan CSV holds at once.
PLAN_RECORD_ROWS = 10_000


@dataclass(frozen=True)
class FileRange:
    """The plan rows (by seq) one import file holds, and how many adds and removes."""

    first_seq: int
    last_seq: int
    adds: int
    removes: int

    @property
    def users(self) -> int:
        return self.adds + self.removes


@dataclass(frozen=True)
class RunStop:
    """Why the send loop stopped early."""

    status: str
    code: str
    message: str


@dataclass
class SendTotals:
    """What was sent so far: the numbers the run's final status and message are made of."""

    succeeded: int = 0
    failed: int = 0
    failure_codes: Counter[str] = field(default_factory=Counter)
    failure_messages: dict[str, str] = field(default_factory=dict)
    stop: RunStop | None = None
    cancelled: bool = False


def run_claim(*, run_id: int) -> bool:
    """queued -> running, atomically, with every counter reset; False when another worker
    (or a re-delivery) got it."""
    now = timezone.now()
    claimed = SyncRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING,
        started_at=now,
        heartbeat_at=now,
        worker=worker_identity(),
        finished_at=None,
        attempted_adds=0,
        succeeded_adds=0,
        failed_adds=0,
        attempted_removes=0,
        succeeded_removes=0,
        failed_removes=0,
        skipped_users=0,
        api_calls=0,
        error_code="",
        error_message="",
    )
    return claimed == 1


def failure_outcome(exc: BaseException) -> PushOutcome:
    """The outcome every user of a unit gets when sending the whole unit raised."""
    if isinstance(exc, DestinationError):
        return PushOutcome(identity="", ok=False, code=exc.stored_code, message=exc.message,
                           retriable=error_retriable(exc))
    return PushOutcome(
        identity="", ok=False, code=codes.INTERNAL_ERROR, retriable=True,
        message="CohortSync hit an unexpected error while sending these users; see the worker log.",
    )


class RunLedger:
    """The record of one run, as it is carried out."""

    def __init__(self, run: SyncRun) -> None:
        self.run = run
        self.totals = SendTotals()
        # The destination calls this run made, and whether its connector reports remote ids
        # (both set once the connector exists).
        self.api_calls: Callable[[], int] | None = None
        self.keeps_remote_ids = False
        self._scrubber: Scrubber | None = None
        self._attempted: list[StagedChange] = []
        self._acknowledged: list[StagedChange] = []
        self._failed: list[tuple[StagedChange, PushOutcome]] = []
        self._remote_ids: dict[str, str] = {}
        self._ranges: list[tuple[FileRange, list[PushOutcome]]] = []
        self._range_errors: list[tuple[FileRange, PushOutcome]] = []

    # --- the run record -------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        if self._scrubber is None:
            try:
                secrets = [self.run.sync.destination.client_secret]
            except SecretDecryptionError:
                secrets = []  # nobody can read it, so nothing can echo it
            self._scrubber = Scrubber(secrets)
        return self._scrubber(text)

    def _calls(self) -> dict[str, int]:
        return {} if self.api_calls is None else {"api_calls": self.api_calls()}

    def _update(self, **values: Any) -> None:
        SyncRun.objects.filter(pk=self.run.pk).update(**values)

    def heartbeat(self) -> None:
        """The run is alive (and has made this many calls)."""
        self._update(heartbeat_at=timezone.now(), **self._calls())

    def start_afresh(self) -> None:
        """An approved run was planned once already (to show the guard): its audit starts
        again."""
        SyncFailure.objects.filter(run_id=self.run.pk).delete()

    def planned(
        self, plan: Plan, *, sample: dict[str, Any] | None = None, acknowledged_members: int | None = None
    ) -> None:
        """The plan's counts (a streamed plan's grow while it is sent), its sample, and the
        sync's acknowledged members before sending (moved by what the run acknowledges when
        it finishes)."""
        values: dict[str, Any] = {
            "planned_adds": plan.adds, "planned_removes": plan.removes, "skipped_users": plan.skipped,
        }
        if sample is not None:
            values |= {"plan_sample": sample, "heartbeat_at": timezone.now(), **self._calls()}
        if acknowledged_members is not None:
            values["acknowledged_members"] = acknowledged_members
        self._update(**values)

    def plan_record(self, plan: Plan) -> None:
        """Keep what was planned since the last call in the run's plan record, for its CSV."""
        plan.recorded_seq = _plan_chunks_write(run_id=self.run.pk, after_seq=plan.recorded_seq)

    def skips_record(self, skipped: list[tuple[int, Any, str, str]]) -> None:
        """Rows for members skipped while planning: (profile id, raw identity, code, message)."""
        if not skipped:
            return
        distinct_ids = dict(
            Profile.objects.filter(pk__in=[s[0] for s in skipped]).values_list("pk", "distinct_id")
        )
        SyncFailure.objects.bulk_create(
            [
                SyncFailure(
                    run_id=self.run.pk,
                    profile_id=profile_id,
                    distinct_id=distinct_ids.get(profile_id, ""),
                    identity_value="" if raw is None else str(raw)[:512],
                    operation=SyncFailure.Operation.SKIP,
                    code=code[:MAX_CODE_LENGTH],
                    message=message,
                    retriable=False,
                )
                for profile_id, raw, code, message in skipped
            ],
            batch_size=1000,
        )

    def finish(self, status: str, *, code: str = "", message: str = "") -> None:
        """The run's resting status; listeners (alerts) are told."""
        now = timezone.now()
        self._update(
            status=status,
            finished_at=now,
            heartbeat_at=now,
            error_code=self.scrub(code)[:MAX_CODE_LENGTH],
            error_message=self.scrub(message),
            acknowledged_members=self._acknowledged_members_at_end(),
            **self._calls(),
        )
        run_finished_notify(run_id=self.run.pk, status=status)

    def _acknowledged_members_at_end(self) -> int | Combinable:
        """The sync's acknowledged members once the run ends (the trend on the sync page),
        without counting a million rows again: the guard's count when the run was planned,
        plus the adds and minus the removes the run acknowledged, since every planned add was
        not a member and every planned remove was. A full resync re-sends members, so it
        counts. Stays empty for a run that ended before it was planned."""
        if self.run.is_full_resync:
            return SyncedMember.objects.filter(sync_id=self.run.sync_id, is_member=True).count()
        return F("acknowledged_members") + F("succeeded_adds") - F("succeeded_removes")

    def await_approval(self, reason: str) -> None:
        """The removal guard holds the run: nothing was sent."""
        self._update(
            status=RunStatus.AWAITING_APPROVAL,
            heartbeat_at=timezone.now(),
            error_code=codes.REMOVAL_GUARD,
            error_message=self.scrub(f"{reason} Nothing was sent. Check the cohort; approve the run "
                                     "to send these changes, or reject it."),
            **self._calls(),
        )
        run_finished_notify(run_id=self.run.pk, status=RunStatus.AWAITING_APPROVAL)

    def finish_cancelled(self, *, sent: int, planned: int, plan_complete: bool) -> None:
        self.run.refresh_from_db(fields=["cancelled_by"])
        who = f" by {self.run.cancelled_by}" if self.run.cancelled_by_id else ""
        if plan_complete:
            sent_text = f"{sent:,} of {planned:,} changes were sent"
        else:  # a streamed first export cancelled before its whole cohort was planned
            sent_text = (
                f"{sent:,} changes were sent, of {planned:,} planned so far (the rest of the cohort "
                "was not planned yet)"
            )
        self.finish(RunStatus.CANCELLED, code=codes.CANCELLED,
                    message=f"Cancelled{who} after {sent_text}. The next run sends the rest.")

    def finish_sent(self, *, planned: int, plan_complete: bool) -> None:
        """The resting status of a run that sent its plan (or stopped sending it)."""
        totals = self.totals
        top_code = totals.failure_codes.most_common(1)[0][0] if totals.failure_codes else ""
        if totals.stop is not None:
            message = totals.stop.message
            if totals.succeeded:
                message = f"{message} {totals.succeeded:,} users were acknowledged before it stopped and are kept."
            self.finish(totals.stop.status, code=totals.stop.code, message=message)
        elif totals.cancelled:
            self.finish_cancelled(sent=totals.succeeded + totals.failed, planned=planned, plan_complete=plan_complete)
        elif totals.failed:
            status = RunStatus.PARTIAL if totals.succeeded else RunStatus.FAILED
            self.finish(status, code=top_code, message=self._failure_summary(planned))
        else:
            self.finish(RunStatus.SUCCEEDED)

    def _failure_summary(self, planned: int) -> str:
        totals = self.totals
        parts = [
            f"{count:,} × {code} ({totals.failure_messages.get(code, '')})"
            for code, count in totals.failure_codes.most_common(3)
        ]
        more = "" if len(totals.failure_codes) <= 3 else f" and {len(totals.failure_codes) - 3} other codes"
        return (
            f"{totals.failed:,} of {planned:,} users failed: {'; '.join(parts)}{more}. They are "
            "sent again by the next run; “Retry failed users” re-sends only them."
        )

    # --- outcomes of sent units, written by flush() ----------------------------------------------

    def batch_sent(self, batch: list[StagedChange], outcomes: list[PushOutcome]) -> None:
        """A batch's outcomes, one per change (matched by identity when a connector reordered
        or dropped some: a user without an outcome is never counted as acknowledged)."""
        if len(outcomes) == len(batch) and all(o.identity == c.identity for o, c in zip(outcomes, batch, strict=True)):
            paired = list(zip(batch, outcomes, strict=True))
        else:
            by_identity = {o.identity: o for o in outcomes}
            missing = PushOutcome(identity="", ok=False, code=codes.NO_OUTCOME,
                                  message="The destination returned no result for this user; "
                                  "it is sent again on the next run.", retriable=True)
            paired = [(c, by_identity.get(c.identity, missing)) for c in batch]
        if self.keeps_remote_ids:
            self._remote_ids.update((c.identity, o.remote_id) for c, o in paired if o.ok and o.remote_id)
        self._collect(batch, [c for c, o in paired if o.ok], [(c, o) for c, o in paired if not o.ok])

    def batch_failed(self, batch: list[StagedChange], exc: BaseException) -> None:
        outcome = failure_outcome(exc)
        self._collect(batch, [], [(c, outcome) for c in batch])

    def _collect(
        self,
        batch: list[StagedChange],
        acknowledged: list[StagedChange],
        failed: list[tuple[StagedChange, PushOutcome]],
    ) -> None:
        # The totals the run's final status is decided from are kept as outcomes arrive.
        self._count_failures(o for _, o in failed)
        self.totals.succeeded += len(acknowledged)
        self.totals.failed += len(failed)
        self._attempted += batch
        self._acknowledged += acknowledged
        self._failed += failed

    def file_sent(self, span: FileRange, failed: list[PushOutcome]) -> None:
        """An imported file: every user of the range is acknowledged but `failed`."""
        self._ranges.append((span, failed))

    def file_failed(self, span: FileRange, exc: BaseException) -> None:
        """The whole file failed: every user of the range gets the error."""
        self._range_errors.append((span, failure_outcome(exc)))

    def _count_failures(self, outcomes: Iterable[PushOutcome]) -> None:
        for outcome in outcomes:
            code = (outcome.code or codes.REFUSED_WITHOUT_CODE)[:MAX_CODE_LENGTH]
            self.totals.failure_codes[code] += 1
            self.totals.failure_messages.setdefault(code, outcome.message)

    def flush(self) -> None:
        """Write every outcome collected since the last flush, in one transaction."""
        if not (self._attempted or self._ranges or self._range_errors):
            return
        attempted, acknowledged, failed = self._attempted, self._acknowledged, self._failed
        remote_ids, ranges, range_errors = self._remote_ids, self._ranges, self._range_errors
        self._attempted, self._acknowledged, self._failed = [], [], []
        self._remote_ids, self._ranges, self._range_errors = {}, [], []
        now = timezone.now()
        counts: Counter[str] = Counter()
        with transaction.atomic():
            if attempted:
                self._batches_write(attempted, acknowledged, failed, remote_ids, now, counts)
            for span, file_failed in ranges:
                foreign = self._range_write(span, file_failed, now, counts)
                if foreign:
                    range_errors.append((span, failure_outcome(UnexpectedResponseError(
                        f"The destination listed {foreign:,} failed users who are not in this import "
                        "file, so its report is about another file. Nobody in this file was "
                        "acknowledged; they are sent again by the next run."
                    ))))
            for span, outcome in range_errors:
                self._range_error_write(span, outcome, counts)
            self._update(heartbeat_at=now, **self._calls(),
                         **{name: F(name) + value for name, value in counts.items()})

    def _batches_write(
        self,
        attempted: list[StagedChange],
        acknowledged: list[StagedChange],
        failed: list[tuple[StagedChange, PushOutcome]],
        remote_ids: Mapping[str, str],
        now: dt.datetime,
        counts: Counter[str],
    ) -> None:
        for change in attempted:
            counts["attempted_adds" if change.is_member else "attempted_removes"] += 1
        for change in acknowledged:
            counts["succeeded_adds" if change.is_member else "succeeded_removes"] += 1
        for change, _ in failed:
            counts["failed_adds" if change.is_member else "failed_removes"] += 1
        if acknowledged:
            _acknowledged_write(self.run.sync_id, acknowledged, remote_ids, now)
        if failed:
            self._failures_create(failed)

    def _range_write(self, span: FileRange, failed: list[PushOutcome], now: dt.datetime, counts: Counter[str]) -> int:
        """Acknowledge the range except `failed`, whose users get failure rows; returns how
        many failed users are not in the range (then nothing is written: the report is about
        another file)."""
        by_identity = {o.identity: o for o in failed}
        staging.staging_range_failed_mark(identities=list(by_identity))
        changes = staging.staging_range_failed(first_seq=span.first_seq, last_seq=span.last_seq) if failed else []
        foreign = len(by_identity) - len(changes)
        if foreign:
            return foreign
        _range_acknowledge(sync_id=self.run.sync_id, first_seq=span.first_seq, last_seq=span.last_seq, now=now)
        paired = [(c, by_identity[c.identity]) for c in changes]
        if paired:
            self._failures_create(paired)
        failed_adds = sum(1 for c, _ in paired if c.is_member)
        failed_removes = len(paired) - failed_adds
        counts.update({
            "attempted_adds": span.adds, "attempted_removes": span.removes,
            "succeeded_adds": span.adds - failed_adds, "succeeded_removes": span.removes - failed_removes,
            "failed_adds": failed_adds, "failed_removes": failed_removes,
        })
        self._count_failures(o for _, o in paired)
        self.totals.failed += len(paired)
        self.totals.succeeded += span.users - len(paired)
        return 0

    def _range_error_write(self, span: FileRange, outcome: PushOutcome, counts: Counter[str]) -> None:
        """Every user of the range gets `outcome`, read page by page."""
        after = span.first_seq - 1
        while page := staging.staging_changes_page(after_seq=after, limit=FAILURE_ROWS_PER_INSERT):
            page = [c for c in page if c.seq <= span.last_seq]
            if not page:
                break
            after = page[-1].seq
            self._failures_create([(c, outcome) for c in page])
        counts.update({"attempted_adds": span.adds, "attempted_removes": span.removes,
                       "failed_adds": span.adds, "failed_removes": span.removes})
        code = (outcome.code or codes.REFUSED_WITHOUT_CODE)[:MAX_CODE_LENGTH]
        self.totals.failure_codes[code] += span.users
        self.totals.failure_messages.setdefault(code, outcome.message)
        self.totals.failed += span.users

    def _failures_create(self, failed: list[tuple[StagedChange, PushOutcome]]) -> None:
        """Failure rows for `failed`, their codes and messages scrubbed."""
        ids = [c.profile_id for c, _ in failed if c.profile_id]
        distinct_ids = dict(Profile.objects.filter(pk__in=ids).values_list("pk", "distinct_id")) if ids else {}
        scrub = self.scrub
        SyncFailure.objects.bulk_create(
            [
                SyncFailure(
                    run_id=self.run.pk,
                    profile_id=c.profile_id,
                    distinct_id=distinct_ids.get(c.profile_id, "") if c.profile_id else "",
                    identity_value=c.identity,
                    operation=SyncFailure.Operation.ADD if c.is_member else SyncFailure.Operation.REMOVE,
                    code=scrub(o.code or codes.REFUSED_WITHOUT_CODE)[:MAX_CODE_LENGTH],
                    message=scrub(o.message) or "The destination rejected this user without a reason.",
                    retriable=o.retriable,
                )
                for c, o in failed
            ],
            batch_size=FAILURE_ROWS_PER_INSERT,
        )


# --- the synced state ---------------------------------------------------------------------------


def _acknowledged_write(
    sync_id: int, acknowledged: list[StagedChange], remote_ids: Mapping[str, str], now: dt.datetime
) -> None:
    # One row per identity (ON CONFLICT cannot touch a row twice in one statement); the
    # last outcome wins, as it would with one statement per batch. A remote id the
    # destination did not report this time keeps the one stored.
    latest = {c.identity: c.is_member for c in acknowledged}
    with_ids = {i: m for i, m in latest.items() if i in remote_ids} if remote_ids else {}
    without_ids = {i: m for i, m in latest.items() if i not in remote_ids} if with_ids else latest
    if connection.vendor == "postgresql":
        if without_ids:
            _acknowledged_upsert(sync_id, without_ids, now)
        if with_ids:
            _acknowledged_upsert(sync_id, with_ids, now, remote_ids=remote_ids)
        return
    for values, fields in ((without_ids, ["is_member", "acknowledged_at"]),
                           (with_ids, ["is_member", "acknowledged_at", "remote_id"])):
        if values:
            SyncedMember.objects.bulk_create(
                [
                    SyncedMember(sync_id=sync_id, identity_value=identity, is_member=is_member,
                                 acknowledged_at=now, remote_id=remote_ids.get(identity, ""))
                    for identity, is_member in values.items()
                ],
                update_conflicts=True,
                unique_fields=["sync", "identity_value"],
                update_fields=fields,
                batch_size=2000,
            )


def _acknowledged_upsert(
    sync_id: int, latest: Mapping[str, bool], now: dt.datetime, *, remote_ids: Mapping[str, str] | None = None
) -> None:
    """One statement for any number of rows: model instances and 2,000-row batches cost
    more than the write itself at a million users."""
    table = connection.ops.quote_name(SyncedMember._meta.db_table)
    with connection.cursor() as cursor:
        if remote_ids is None:
            cursor.execute(
                f"INSERT INTO {table} (sync_id, identity_value, is_member, acknowledged_at) "
                "SELECT %s, t.identity, t.is_member, %s FROM unnest(%s::text[], %s::boolean[]) "
                "AS t(identity, is_member) ON CONFLICT (sync_id, identity_value) DO UPDATE SET "
                "is_member = EXCLUDED.is_member, acknowledged_at = EXCLUDED.acknowledged_at",
                [sync_id, now, list(latest), list(latest.values())],
            )
            return
        cursor.execute(
            f"INSERT INTO {table} (sync_id, identity_value, is_member, acknowledged_at, remote_id) "
            "SELECT %s, t.identity, t.is_member, %s, t.remote_id "
            "FROM unnest(%s::text[], %s::boolean[], %s::text[]) AS t(identity, is_member, remote_id) "
            "ON CONFLICT (sync_id, identity_value) DO UPDATE SET is_member = EXCLUDED.is_member, "
            "acknowledged_at = EXCLUDED.acknowledged_at, remote_id = EXCLUDED.remote_id",
            [sync_id, now, list(latest), list(latest.values()), [remote_ids[i] for i in latest]],
        )


def _range_acknowledge(*, sync_id: int, first_seq: int, last_seq: int, now: dt.datetime) -> None:
    """Move the synced state of every change in the range whose identity is not marked
    failed, in one statement (the plan holds each identity once)."""
    synced = connection.ops.quote_name(SyncedMember._meta.db_table)
    changes, failed = staging.quoted(staging.CHANGES_TABLE), staging.quoted(staging.FAILED_TABLE)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {synced} (sync_id, identity_value, is_member, acknowledged_at) "
            f"SELECT %s, c.identity, c.is_member, %s FROM {changes} c "
            "WHERE c.seq BETWEEN %s AND %s "
            f"AND NOT EXISTS (SELECT 1 FROM {failed} f WHERE f.identity = c.identity) "
            "ON CONFLICT (sync_id, identity_value) DO UPDATE SET "
            "is_member = excluded.is_member, acknowledged_at = excluded.acknowledged_at",
            [sync_id, now, first_seq, last_seq],
        )


def _plan_chunks_write(*, run_id: int, after_seq: int) -> int:
    """Keep the changes planned after `after_seq` as the run's plan (RunPlanChunk), packed
    in the database by one INSERT ... SELECT: PLAN_RECORD_ROWS users to add or to remove per
    row, as JSON arrays. `after_seq` 0 starts the record afresh (an approved run plans
    again). Returns the last seq recorded, the `after_seq` of the next call."""
    chunks, changes = staging.quoted(RunPlanChunk._meta.db_table), staging.quoted(staging.CHANGES_TABLE)
    # Both arrays of a row are built over the same rows in the same order, so they pair up.
    packed = "json_agg" if connection.vendor == "postgresql" else "json_group_array"
    with connection.cursor() as cursor:
        if after_seq == 0:
            cursor.execute(f"DELETE FROM {chunks} WHERE run_id = %s", [run_id])
        cursor.execute(f"SELECT MAX(seq) FROM {changes}")
        last = cursor.fetchone()[0]
        if last is None or last <= after_seq:
            return after_seq
        cursor.execute(
            f"INSERT INTO {chunks} (run_id, first_seq, is_member, users, identities, profile_ids) "
            f"SELECT %s, MIN(seq), is_member, COUNT(*), CAST({packed}(identity) AS TEXT), "
            f"CAST({packed}(profile_id) AS TEXT) FROM {changes} WHERE seq > %s AND seq <= %s "
            "GROUP BY (seq - 1) / %s, is_member",
            [run_id, after_seq, last, PLAN_RECORD_ROWS],
        )
    return int(last)
