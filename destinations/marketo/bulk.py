"""Marketo bulk lead import: one CSV file per 10 MB, queued, polled, failures read back.

The sync endpoint costs one API call per 300 leads, so a 30M-lead cohort would need twice
the default daily quota. A bulk import takes up to 10 MB of CSV (~150k-250k leads) for a
handful of calls (create, a few status polls, the failure and warning files).
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from destinations.errors import PermanentError, TransientError
from destinations.marketo.client import (
    ImportBody,
    ImportQueueFullError,
    MarketoClient,
    import_boundary,
    import_content_type,
    import_part_head,
    import_part_tail,
)

# Marketo's limit is 10 MB per file; stay clear of it whatever "MB" means on their side.
MAX_FILE_BYTES = 9_500_000
# Bytes one row takes, estimated on the high side (a 40-character address plus the flag):
# what a send plan says a file holds. The engine fills files row by row (CsvFile) and cuts
# them by their real size.
ESTIMATED_ROW_BYTES = 64
# Polls follow the import's age (elapsed / POLL_FRACTION, within these bounds; once it is
# importing, the time since it started importing): an import is noticed at most 5 % of its
# age after it finished (a 40-second import within 2 s), and a 2-hour one costs a poll
# every 30 s, not one every 2 s.
POLL_MIN_SECONDS = 2.0
POLL_FRACTION = 20.0
POLL_MAX_SECONDS = 30.0
# How long one import may take (queued + importing) before the batch is given up for now.
IMPORT_MAX_WAIT_SECONDS = 3 * 3600.0
# How long to wait for a place in the import queue (1016) before giving up for now.
QUEUE_MAX_WAIT_SECONDS = 30 * 60.0


# A row the bulk import refused (its failure file names the reason).
IMPORT_FAILURE = "import_failure"


@dataclass(frozen=True)
class RowOutcome:
    ok: bool
    code: str = ""
    message: str = ""
    retriable: bool = False


def rows_per_file() -> int:
    """How many leads one bulk import file safely holds."""
    return MAX_FILE_BYTES // ESTIMATED_ROW_BYTES


_NEEDS_QUOTING = frozenset(',"\r\n')


class CsvFile:
    """One import file filled row by row and cut at its real size: what is kept per row is
    its CSV bytes (~40), so four files of 250k leads in flight cost ~40 MB, not ~1 GB of
    per-row objects. Rows whose email Marketo would refuse are not written; they are
    kept in `invalid` to be reported per user."""

    __slots__ = ("_body", "_boundary", "_check", "_head", "_max_bytes", "invalid", "rows")

    def __init__(
        self, *, field: str, check: Callable[[str], str] | None = None, max_bytes: int | None = None
    ) -> None:
        self._max_bytes = max_bytes or MAX_FILE_BYTES
        self._check = check
        # The CSV is written inside the import call's multipart frame, so the file is sent
        # as it is (take_body) rather than copied into a request body on the sending thread.
        self._boundary = import_boundary()
        self._body: io.BytesIO | None = io.BytesIO()
        self._body.write(import_part_head(self._boundary))
        self._head = self._body.tell()
        self._body.write(csv_line(["email", field]))
        self.rows = 0
        self.invalid: list[tuple[str, str]] = []

    def add(self, email: str, is_member: bool) -> bool:
        """Write one row; False (and nothing written) when it would not fit any more."""
        return self.add_many([(email, is_member)]) == 1

    def add_many(self, rows: Sequence[tuple[str, bool]], remote_ids: Mapping[str, str] | None = None) -> int:
        """Write rows in order until one would not fit; returns how many were taken
        (written, or kept in `invalid`). One call per read of the plan: at 265,000 rows a
        file, add() per row cost half of filling it. (Lead ids are not part of the file.)"""
        assert self._body is not None, "the file was already taken"
        check, invalid, limit = self._check, self.invalid, self._max_bytes
        size, written = self._body.tell() - self._head, self.rows
        lines: list[bytes] = []
        taken = 0
        for email, is_member in rows:
            problem = check(email) if check else ""
            if problem:
                invalid.append((email, problem))
                taken += 1
                continue
            value = "true" if is_member else "false"
            line = f"{email},{value}\r\n".encode() if _NEEDS_QUOTING.isdisjoint(email) else csv_line([email, value])
            if written and size + len(line) > limit:
                break
            lines.append(line)
            size += len(line)
            written += 1
            taken += 1
        self._body.write(b"".join(lines))
        self.rows = written
        return taken

    def take(self) -> bytes:
        """The file's CSV bytes; the buffer is released."""
        assert self._body is not None, "the file was already taken"
        content, self._body = self._body.getvalue()[self._head:], None
        return content

    def take_body(self) -> ImportBody:
        """The import call's whole body, the CSV in its frame, without a copy; the buffer is
        released so a file waiting on its import holds no copy of it."""
        assert self._body is not None, "the file was already taken"
        self._body.write(import_part_tail(self._boundary))
        data, self._body = self._body.getvalue(), None
        return ImportBody(data=data, content_type=import_content_type(self._boundary))


def bulk_import_file(
    *,
    client: MarketoClient,
    content: bytes | ImportBody,
    list_id: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, RowOutcome]:
    """Import one CSV file (its rows also added to static list `list_id`, when given; the
    CSV, or CsvFile.take_body()); returns only the rows Marketo refused (email -> outcome):
    every other row of the file was imported."""
    batch_id = _create_waiting_for_queue(client=client, content=content, list_id=list_id, sleep=sleep, clock=clock)
    del content
    status = _wait_until_done(client=client, batch_id=batch_id, sleep=sleep, clock=clock)
    _raise_if_failed(batch_id, status)
    failed = _count(status, "numOfRowsFailed")
    if not failed:
        return {}
    return {
        email: RowOutcome(ok=False, code=IMPORT_FAILURE, message=_failure_message(reason))
        for email, reason in client.bulk_import_failures(batch_id=batch_id, rows=failed).items()
    }


def csv_line(values: list[str]) -> bytes:
    """One CSV line as bulk import reads it (RFC 4180 quoting, CRLF)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue().encode("utf-8")


def _create_waiting_for_queue(
    *,
    client: MarketoClient,
    content: bytes | ImportBody,
    list_id: int | None,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> int:
    started = clock()
    while True:
        try:
            # The transport already waits out a few 1016 answers; this loop waits longer.
            return client.bulk_import_create(csv_bytes=content, list_id=list_id)
        except ImportQueueFullError as exc:
            waited = clock() - started
            if waited >= QUEUE_MAX_WAIT_SECONDS:
                raise TransientError(
                    f"Marketo's bulk import queue stayed full for {waited / 60:.0f} minutes "
                    "(1016): other integrations are importing. These users stay pending and the "
                    "next run sends them again.",
                    code="1016",
                ) from None
            sleep(exc.retry_after or POLL_MAX_SECONDS)


def _wait_until_done(
    *, client: MarketoClient, batch_id: int, sleep: Callable[[float], None], clock: Callable[[], float]
) -> dict:
    started = clock()
    importing_since: float | None = None
    while True:
        status = client.bulk_import_status(batch_id=batch_id)
        state = str(status.get("status") or "")
        if state in ("Complete", "Failed"):
            return status
        waited = clock() - started
        if state == "Importing" and importing_since is None:
            importing_since = clock()
        if waited >= IMPORT_MAX_WAIT_SECONDS:
            raise TransientError(
                f"Marketo bulk import {batch_id} was still '{state}' after {waited / 3600:.1f} "
                "hours. It may still finish in Marketo; these users stay pending and the next "
                "run sends them again.",
                code="import_timeout",
            )
        # How long it has been importing, not how long it was queued, says how soon it may
        # finish: a file that waited for an import slot is not polled more lazily for it.
        age = waited if importing_since is None else clock() - importing_since
        sleep(min(POLL_MAX_SECONDS, max(POLL_MIN_SECONDS, age / POLL_FRACTION)))


def _raise_if_failed(batch_id: int, status: dict) -> None:
    if status.get("status") == "Failed":
        raise PermanentError(
            f"Marketo failed bulk import {batch_id}: \"{status.get('message') or 'no reason given'}\". "
            "Check that the sync's field still exists and is a Boolean field.",
            code="import_failed",
        )


def _count(status: dict, key: str) -> int:
    try:
        return int(status.get(key) or 0)
    except (TypeError, ValueError):
        return 0


def _failure_message(reason: str) -> str:
    advice = ""
    if "email" in reason.lower():
        advice = " Check the user's email address."
    return f'Marketo\'s bulk import rejected this lead: "{reason or "no reason given"}".{advice}'
