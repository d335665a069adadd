"""Push a staged plan as import files (Marketo bulk): what is in flight is file bytes, not users.

A connector that imports files offers `bulk_file(target)` (an empty file, or None when
this run is not sent as files) and `bulk_file_push(target, file)` (import it; outcomes
for the failed users only). The main thread fills each file from the changes table
(`file.add_many(rows)` takes (identity, is_member) rows until one would not fit, and
says how many it took), so files are cut by their real size, and remembers only the
range of plan rows (seq) the file holds. When a file's import is done, the whole range is
acknowledged in one statement except the users that failed, which get failure rows as on
the other paths. The guarantees are the batch loop's (syncs.engine.pushing): only
acknowledged users move the state, every write is on the main thread, one transaction per
finished file, and a cancel stops before the next file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from destinations.base import PushOutcome, SyncTarget
from destinations.errors import UnexpectedResponseError
from syncs.engine import staging
from syncs.engine.pushing import (
    CANCEL_CHECK_SECONDS,
    WAIT_TICK_SECONDS,
    PushResult,
    StreamedPlan,
    batch_error_outcome,
    batch_error_stop,
    failed_distinct_ids,
    failure_totals,
    failures_create,
    run_scrubber,
)
from syncs.models import SyncRun

READ_ROWS = 20_000


@dataclass(frozen=True)
class FileRange:
    first_seq: int
    last_seq: int
    adds: int
    removes: int

    @property
    def users(self) -> int:
        return self.adds + self.removes


def _filled_files(
    new_file: Callable[[], Any], more: Callable[[], bool] | None = None
) -> Iterator[tuple[Any, FileRange]]:
    """Every change of the plan, in files cut where the connector's file says it is full."""
    file, first, last, adds, removes = new_file(), 0, 0, 0, 0
    reads = staging.staging_reads(
        lambda after, limit: staging.staging_changes_rows(after_seq=after, limit=limit),
        limit=READ_ROWS, seq=lambda row: row[0], more=more,
    )
    for rows in reads:
        pairs = [(identity, is_member) for _, identity, is_member in rows]
        at = 0
        while at < len(rows):
            taken = file.add_many(pairs[at:] if at else pairs)
            if taken:
                if not adds and not removes:
                    first = rows[at][0]
                last = rows[at + taken - 1][0]
                members = sum(1 for _, is_member in pairs[at:at + taken] if is_member)
                adds, removes = adds + members, removes + taken - members
                at += taken
            if at < len(rows):  # the file is full
                yield file, FileRange(first, last, adds, removes)
                file, adds, removes = new_file(), 0, 0
    if adds or removes:
        yield file, FileRange(first, last, adds, removes)


def _record(
    *,
    run: SyncRun,
    span: FileRange,
    failed: list[PushOutcome],
    api_calls: Callable[[], int],
    result: PushResult,
    scrub: Callable[[str], str],
) -> None:
    """Acknowledge the range except `failed` and write their failure rows, in one transaction.

    A failed user who is not in the range means the destination's report is about another
    file: then nobody in this one is acknowledged."""
    now = timezone.now()
    by_identity = {o.identity: o for o in failed}
    with transaction.atomic():
        staging.staging_range_failed_mark(identities=list(by_identity))
        changes = staging.staging_range_failed(first_seq=span.first_seq, last_seq=span.last_seq) if failed else []
        foreign = len(by_identity) - len(changes)
        if not foreign:
            staging.staging_range_acknowledge(
                sync_id=run.sync_id, first_seq=span.first_seq, last_seq=span.last_seq, now=now
            )
            paired = [(c, by_identity[c.identity]) for c in changes]
            if paired:
                failures_create(run_id=run.pk, failed=paired, distinct_ids=failed_distinct_ids(paired), scrub=scrub)
            failed_adds = sum(1 for c, _ in paired if c.is_member)
            failed_removes = len(paired) - failed_adds
            SyncRun.objects.filter(pk=run.pk).update(
                heartbeat_at=now,
                api_calls=api_calls(),
                attempted_adds=F("attempted_adds") + span.adds,
                attempted_removes=F("attempted_removes") + span.removes,
                succeeded_adds=F("succeeded_adds") + span.adds - failed_adds,
                succeeded_removes=F("succeeded_removes") + span.removes - failed_removes,
                failed_adds=F("failed_adds") + failed_adds,
                failed_removes=F("failed_removes") + failed_removes,
            )
    if foreign:
        _record_error(run=run, span=span, api_calls=api_calls, result=result, scrub=scrub, exc=UnexpectedResponseError(
            f"The destination listed {foreign:,} failed users who are not in this import file, so "
            "its report is about another file. Nobody in this file was acknowledged; they are "
            "sent again by the next run."
        ))
        return
    failure_totals(result, (o for _, o in paired))
    result.failed += len(paired)
    result.succeeded += span.users - len(paired)


def _record_error(
    *,
    run: SyncRun,
    span: FileRange,
    exc: BaseException,
    api_calls: Callable[[], int],
    result: PushResult,
    scrub: Callable[[str], str],
) -> None:
    """The whole file failed: every user of the range gets the error, read page by page."""
    outcome = batch_error_outcome(exc)
    now = timezone.now()
    with transaction.atomic():
        after = span.first_seq - 1
        while page := staging.staging_changes_page(after_seq=after, limit=2000):
            page = [c for c in page if c.seq <= span.last_seq]
            if not page:
                break
            after = page[-1].seq
            paired = [(c, outcome) for c in page]
            failures_create(run_id=run.pk, failed=paired, distinct_ids=failed_distinct_ids(paired), scrub=scrub)
        SyncRun.objects.filter(pk=run.pk).update(
            heartbeat_at=now,
            api_calls=api_calls(),
            attempted_adds=F("attempted_adds") + span.adds,
            attempted_removes=F("attempted_removes") + span.removes,
            failed_adds=F("failed_adds") + span.adds,
            failed_removes=F("failed_removes") + span.removes,
        )
    code = outcome.code[:64]
    result.failure_codes[code] += span.users
    result.failure_messages.setdefault(code, outcome.message)
    result.failed += span.users


def files_push(
    *,
    run: SyncRun,
    connector: Any,
    target: SyncTarget,
    total_changes: int,
    heartbeat: Callable[[], None],
    cancel_requested: Callable[[], bool],
    api_calls: Callable[[], int],
    streamed: StreamedPlan | None = None,
) -> PushResult:
    """Send the plan as files; a `streamed` plan is planned further as files need rows."""
    result = PushResult()
    connector.batch_size(total_changes)  # puts the connector in the mode files belong to
    concurrency = max(1, int(connector.max_concurrency))
    files = _filled_files(lambda: connector.bulk_file(target), streamed.more if streamed is not None else None)
    in_flight: dict[Future[list[PushOutcome]], FileRange] = {}
    scrub = run_scrubber(run)
    consecutive_transient = 0
    last_cancel_check = float("-inf")

    def stopping() -> bool:
        return result.stop is not None or result.cancelled

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"run{run.pk}") as pool:
        while True:
            while not stopping() and len(in_flight) < concurrency:
                filled = next(files, None)
                if filled is None:
                    break
                file, span = filled
                in_flight[pool.submit(connector.bulk_file_push, target, file)] = span
            if not in_flight:
                break
            done, _ = wait(in_flight, timeout=WAIT_TICK_SECONDS, return_when=FIRST_COMPLETED)
            if not done:
                heartbeat()  # imports take minutes: show the run is alive
            for future in done:
                span = in_flight.pop(future)
                try:
                    failed = future.result()
                except Exception as exc:
                    _record_error(run=run, span=span, exc=exc, api_calls=api_calls, result=result, scrub=scrub)
                    consecutive_transient = batch_error_stop(
                        result=result, exc=exc, consecutive_transient=consecutive_transient, run_id=run.pk
                    )
                    continue
                consecutive_transient = 0
                _record(run=run, span=span, failed=failed, api_calls=api_calls, result=result, scrub=scrub)
            now = time.monotonic()
            if not stopping() and now - last_cancel_check >= CANCEL_CHECK_SECONDS:
                last_cancel_check = now
                if cancel_requested():
                    result.cancelled = True
    return result
