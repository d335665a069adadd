"""Profile import from CSV or JSON Lines, and static cohort member lists.

Files are streamed line by line and written in set-based batches, so a file of millions of
rows never sits in memory and never becomes millions of single-row saves.

CSV: a header row with a ``distinct_id`` column; every other column is a property. Cells
are typed conservatively (cohorts.rules.infer_scalar): exact integers (no leading zeros, at
most 15 digits), decimals and true/false become numbers and booleans, everything else stays
text. An empty cell means "not provided" and leaves the stored value alone.

JSON Lines: one ``{"distinct_id": "...", "properties": {...}}`` object per line. A property
set to null is removed from the profile.

Both: rows upsert by distinct id and merge top-level properties into the stored ones (given
keys overwrite, other keys are kept). Bad rows are rejected with their line number and the
import carries on; each batch commits on its own, so re-running a file after a crash is safe.
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from django.db import DataError, IntegrityError, connection, transaction
from django.utils import timezone

from cohorts.csv_records import csv_records
from cohorts.models import Cohort, Profile, StaticMembership
from cohorts.profile_rows import (
    MAX_DISTINCT_ID_LENGTH,  # noqa: F401 (re-exported, part of this module's interface)
    ProfileRow,
    ProfileRowError,
    distinct_id_problem,
    profile_row_normalize,
)
from cohorts.rules import infer_scalar
from cohortsync_site.database import database_error_text, statistics_refresh
from cohortsync_site.json_values import JSONValueError, json_loads
from cohortsync_site.text import count_of

FileFormat = Literal["csv", "jsonl"]
FORMATS: tuple[str, ...] = ("csv", "jsonl")
DEFAULT_BATCH_SIZE = 5000
# Imports that wrote this many profiles refresh the table's planner statistics.
ANALYZE_AFTER_ROWS = 50_000
MAX_REJECT_DETAILS = 1000
DISTINCT_ID_COLUMNS = ("distinct_id", "$distinct_id")


class ImportFileError(Exception):
    """The file as a whole cannot be imported (unreadable, no header, no distinct_id)."""


@dataclass(frozen=True)
class RejectedRow:
    line: int
    reason: str


@dataclass
class ImportReport:
    file_format: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejects: list[RejectedRow] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return self.created + self.updated + self.unchanged + self.rejected

    @property
    def rows_accepted(self) -> int:
        return self.created + self.updated + self.unchanged

    def reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        if len(self.rejects) < MAX_REJECT_DETAILS:
            self.rejects.append(RejectedRow(line=line, reason=reason))

    def summary(self) -> str:
        return (
            f"{count_of(self.rows_read, 'row')} read: {count_of(self.created, 'profile')} created, "
            f"{self.updated:,} updated, {self.unchanged:,} unchanged, {self.rejected:,} rejected."
        )


# --- Public service ----------------------------------------------------------------------


def profiles_import(
    *,
    source: IO[bytes] | str | os.PathLike[str],
    file_format: FileFormat | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_progress: Callable[[ImportReport], None] | None = None,
) -> ImportReport:
    """Upsert profiles from a CSV or JSON Lines file (a path or a binary file object).

    file_format None infers it from the file name, else from the first line. Raises
    ImportFileError when the file cannot be read at all; bad rows only end up in the report.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1.")
    if file_format is not None and file_format not in FORMATS:
        raise ImportFileError(f"Unknown format {file_format!r}: use csv or jsonl.")
    if isinstance(source, str | os.PathLike):
        try:
            handle: IO[bytes] = open(source, "rb")
        except OSError as exc:
            raise ImportFileError(f"Cannot read {source}: {exc.strerror or exc}.") from None
        try:
            return _import_stream(handle, Path(source).name, file_format, batch_size, on_progress)
        finally:
            handle.close()
    name = str(getattr(source, "name", "") or "")
    return _import_stream(source, name, file_format, batch_size, on_progress)


def profiles_upsert(
    *,
    rows: Iterable[ProfileRow],
    report: ImportReport,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_progress: Callable[[ImportReport], None] | None = None,
    read_ahead: bool = False,
) -> ImportReport:
    """Merge rows into profiles in set-based batches (one transaction each), counting
    created / updated / unchanged in `report`: the one write path of every import.

    `read_ahead`: produce rows in a thread that stays up to two batches ahead of the
    writes (the rows' producer must then be usable from another thread).
    """
    writer = _BatchWriter(report)
    batched = _batches(rows, batch_size)
    # Reading and parsing (Python) run in a thread ahead of the writes (the database), so
    # the two overlap: at a million rows each was about half of a file import's time.
    batches = 0
    for batch, merged in _read_ahead(batched) if read_ahead else batched:
        report.updated += merged
        writer.write(batch)
        batches += 1
        if on_progress:
            on_progress(report)
    if on_progress and not batches:
        on_progress(report)
    if report.created + report.updated >= ANALYZE_AFTER_ROWS:
        statistics_refresh(Profile)
    return report


def cohort_static_members_replace(*, cohort: Cohort, distinct_ids: Iterable[str]) -> int:
    """Replace a static cohort's list with these ids (blank lines skipped, duplicates
    collapsed) and return how many distinct ids it now lists.

    Raises ValueError naming the first id that cannot be stored (too long, a NUL
    character); nothing changes then.
    """
    now = timezone.now()
    with transaction.atomic():
        StaticMembership.objects.filter(cohort=cohort).delete()
        batch: list[StaticMembership] = []
        for position, raw in enumerate(distinct_ids, start=1):
            distinct_id = raw.strip()
            if not distinct_id:
                continue
            problem = distinct_id_problem(distinct_id, label="distinct id")
            if problem:
                raise ValueError(f"Line {position}: {problem}.")
            batch.append(StaticMembership(cohort=cohort, distinct_id=distinct_id, added_at=now))
            if len(batch) >= DEFAULT_BATCH_SIZE:
                StaticMembership.objects.bulk_create(batch, ignore_conflicts=True)
                batch = []
        if batch:
            StaticMembership.objects.bulk_create(batch, ignore_conflicts=True)
        return StaticMembership.objects.filter(cohort=cohort).count()


def distinct_ids_from_lines(lines: Iterable[bytes | str]) -> Iterator[str]:
    """Ids from an uploaded list: one per line, an optional "distinct_id" header skipped."""
    for index, raw in enumerate(lines):
        text = raw.decode("utf-8-sig", errors="replace") if isinstance(raw, bytes) else raw
        text = text.strip().strip("\ufeff")
        if index == 0 and text.lower() in DISTINCT_ID_COLUMNS:
            continue
        if text:
            yield text


# --- Reading -----------------------------------------------------------------------------


def _import_stream(
    handle: IO[bytes],
    name: str,
    file_format: FileFormat | None,
    batch_size: int,
    on_progress: Callable[[ImportReport], None] | None,
) -> ImportReport:
    lines = _LineReader(handle)
    chosen = file_format or _infer_format(name, lines)
    report = ImportReport(file_format=chosen)
    rows = _csv_rows(lines, report) if chosen == "csv" else _jsonl_rows(lines, report)
    return profiles_upsert(
        rows=rows, report=report, batch_size=batch_size, on_progress=on_progress, read_ahead=True
    )


def _batches(rows: Iterable[ProfileRow], batch_size: int) -> Iterator[tuple[list[ProfileRow], int]]:
    """(rows, how many rows were merged into an earlier row of the batch) per batch."""
    pending: dict[str, ProfileRow] = {}
    merged = 0
    for row in rows:
        existing = pending.get(row.distinct_id)
        if existing is None:
            pending[row.distinct_id] = row
        else:
            # Two rows for one id in a batch: apply them in file order, like two imports.
            existing.properties.update(row.properties)
            existing.properties = {
                k: v for k, v in existing.properties.items() if k not in row.removals
            }
            existing.removals = (existing.removals - set(row.properties)) | row.removals
            merged += 1
        if len(pending) >= batch_size:
            yield list(pending.values()), merged
            pending, merged = {}, 0
    if pending:
        yield list(pending.values()), merged


_DONE = object()


def _read_ahead(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    """Yield `items`, produced by a thread that stays up to `depth` items ahead. An
    exception in the producer is raised here; stopping early stops the producer."""
    handoff: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised there
            put((False, exc))
            return
        put((True, _DONE))

    producer = threading.Thread(target=produce, name="import-reader", daemon=True)
    producer.start()
    try:
        while True:
            ok, item = handoff.get()
            if not ok:
                raise item
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        producer.join()


class _LineReader:
    """Binary lines decoded as UTF-8, remembering which line numbers were not valid UTF-8
    (decoded with surrogate escapes so the CSV parser keeps its place)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self._peeked: list[bytes] = []
        self.bad_lines: set[int] = set()
        self.number = 0

    def peek_first(self) -> bytes:
        while True:
            raw = self._readline()
            if not raw:
                return b""
            self._peeked.append(raw)
            if raw.strip():
                return raw

    def _readline(self) -> bytes:
        try:
            raw = self._handle.readline()
        except (OSError, ValueError) as exc:
            raise ImportFileError(f"The file could not be read: {exc}.") from None
        return raw.encode("utf-8") if isinstance(raw, str) else raw

    def numbered(self) -> Iterator[tuple[int, str]]:
        """(line number, text) for each line."""
        while True:
            raw = self._peeked.pop(0) if self._peeked else self._readline()
            if not raw:
                return
            self.number += 1
            if self.number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield self.number, raw.decode("utf-8")
            except UnicodeDecodeError:
                self.bad_lines.add(self.number)
                yield self.number, raw.decode("utf-8", errors="surrogateescape")


def _infer_format(name: str, lines: _LineReader) -> FileFormat:
    suffix = Path(name).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    first = lines.peek_first().lstrip(b"\xef\xbb\xbf \t")
    return "jsonl" if first.startswith(b"{") else "csv"


def _csv_rows(lines: _LineReader, report: ImportReport) -> Iterator[ProfileRow]:
    records = csv_records(lines.numbered())
    header_record = next(records, None)
    if header_record is None:
        raise ImportFileError("The file is empty: expected a CSV header row.")
    if header_record.open_quote_line is not None:
        raise ImportFileError(
            f"The CSV header row opens a quoted value on line {header_record.open_quote_line} "
            "that is never closed; fix or remove the stray quote."
        )
    if header_record.cells is None:
        raise ImportFileError(f"The CSV header row could not be parsed: {header_record.problem}.")
    if 1 in lines.bad_lines:
        raise ImportFileError("The header row is not valid UTF-8 text; save the file as UTF-8.")
    columns = [name.strip() for name in header_record.cells]
    id_positions = [i for i, name in enumerate(columns) if name.lower() in DISTINCT_ID_COLUMNS]
    if not id_positions:
        raise ImportFileError(
            "The CSV header has no distinct_id column; the first row must name the columns, "
            "e.g. distinct_id,$email,plan."
        )
    if len(id_positions) > 1:
        raise ImportFileError("The CSV header names the distinct_id column more than once.")
    for position, name in enumerate(columns, start=1):
        if not name:
            raise ImportFileError(f"Column {position} of the CSV header has no name.")
        if columns.count(name) > 1:
            raise ImportFileError(f"The CSV header names column {name!r} more than once.")
        if "\x00" in name:
            raise ImportFileError(f"Column {position} of the CSV header contains a NUL byte.")
    id_position = id_positions[0]
    width = len(columns)
    for record in records:
        start, cells = record.first_line, record.cells
        if cells is None:
            report.reject(start, record.problem or "the row could not be parsed as CSV")
            continue
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue
        if lines.bad_lines and not lines.bad_lines.isdisjoint(
            range(start, record.last_line + 1)
        ):
            report.reject(start, "the row is not valid UTF-8 text")
            continue
        if len(cells) > width:
            report.reject(start, f"the row has {len(cells)} values but the header has {width} columns")
            continue
        properties = {
            columns[i]: infer_scalar(cell)
            for i, cell in enumerate(cells)
            if i != id_position and cell != ""
        }
        try:
            yield profile_row_normalize(
                distinct_id=cells[id_position] if id_position < len(cells) else "",
                properties=properties,
                line=start,
            )
        except ProfileRowError as exc:
            report.reject(start, str(exc))


def _jsonl_rows(lines: _LineReader, report: ImportReport) -> Iterator[ProfileRow]:
    for number, text in lines.numbered():
        if not text.strip():
            continue
        if number in lines.bad_lines:
            report.reject(number, "the line is not valid UTF-8 text")
            continue
        try:
            record = json_loads(text)
        except JSONValueError as exc:
            report.reject(number, f"the line {exc.problem}")
            continue
        except ValueError as exc:
            report.reject(number, f"the line is not valid JSON ({_short(exc)})")
            continue
        if not isinstance(record, dict):
            report.reject(number, 'the line must be a JSON object {"distinct_id": ..., "properties": {...}}')
            continue
        unexpected = sorted(set(record) - {"distinct_id", "properties"})
        if unexpected:
            report.reject(
                number,
                f"unexpected key {unexpected[0]!r}: put profile properties inside \"properties\"",
            )
            continue
        try:
            yield profile_row_normalize(
                distinct_id=record.get("distinct_id"),
                properties=record.get("properties", {}),
                line=number,
            )
        except ProfileRowError as exc:
            report.reject(number, str(exc))


def _short(exc: Exception) -> str:
    return str(exc).split(": line ")[0][:120]


# --- Writing -----------------------------------------------------------------------------


class _BatchWriter:
    """One transaction per batch; PostgreSQL merges in SQL, SQLite merges in Python.

    SQLite's json_patch() merges nested objects recursively and PostgreSQL's || does not;
    merging in Python on SQLite keeps the top-level semantics identical on both.
    """

    def __init__(self, report: ImportReport) -> None:
        self.report = report
        self.table = connection.ops.quote_name(Profile._meta.db_table)

    def write(self, rows: list[ProfileRow]) -> None:
        try:
            with transaction.atomic():
                if connection.vendor == "postgresql":
                    counts = self._write_postgresql(rows)
                else:
                    counts = self._write_generic(rows)
        except _ROW_REFUSALS as exc:
            # profile_row_normalize should have refused the row already; if the database
            # still does, find it by halving the batch so it alone is rejected and every
            # other row of the batch is written.
            if len(rows) == 1:
                self.report.reject(rows[0].line, f"the database refused the row ({database_error_text(exc)})")
                return
            middle = len(rows) // 2
            self.write(rows[:middle])
            self.write(rows[middle:])
            return
        created, updated, unchanged = counts
        self.report.created += created
        self.report.updated += updated
        self.report.unchanged += unchanged

    def _write_postgresql(self, rows: list[ProfileRow]) -> tuple[int, int, int]:
        now = timezone.now()
        table = self.table
        # One JSON document per batch: a single string parameter is far cheaper for the
        # driver to send than two 5,000-element arrays.
        batch = json.dumps(
            [{"d": row.distinct_id, "p": row.properties} for row in rows], ensure_ascii=False
        )
        with connection.cursor() as cursor:
            # `xmax = 0` is true only for freshly inserted tuples: created vs updated in one
            # round trip. The WHERE skips rows the merge would not change, so re-importing a
            # file rewrites nothing.
            cursor.execute(
                f"""
                INSERT INTO {table} (distinct_id, properties, created_at, updated_at)
                SELECT t.d, t.p, %s, %s FROM jsonb_to_recordset(%s::jsonb) AS t(d text, p jsonb)
                ON CONFLICT (distinct_id) DO UPDATE
                    SET properties = {table}.properties || EXCLUDED.properties,
                        updated_at = EXCLUDED.updated_at
                    WHERE {table}.properties IS DISTINCT FROM
                          ({table}.properties || EXCLUDED.properties)
                RETURNING distinct_id, (xmax = 0)
                """,
                [now, now, batch],
            )
            written = dict(cursor.fetchall())
            removals = [
                {"d": row.distinct_id, "k": sorted(row.removals)} for row in rows if row.removals
            ]
            removed: set[str] = set()
            if removals:
                cursor.execute(
                    f"""
                    UPDATE {table} AS p
                    SET properties = p.properties - r.keys, updated_at = %s
                    FROM (
                        SELECT t.d, ARRAY(SELECT jsonb_array_elements_text(t.k)) AS keys
                        FROM jsonb_to_recordset(%s::jsonb) AS t(d text, k jsonb)
                    ) AS r
                    WHERE p.distinct_id = r.d AND p.properties ?| r.keys
                    RETURNING p.distinct_id
                    """,
                    [now, json.dumps(removals, ensure_ascii=False)],
                )
                removed = {distinct_id for (distinct_id,) in cursor.fetchall()}
        created = sum(1 for was_created in written.values() if was_created)
        changed = (set(written) | removed) - {d for d, c in written.items() if c}
        return created, len(changed), len(rows) - created - len(changed)

    def _write_generic(self, rows: list[ProfileRow]) -> tuple[int, int, int]:
        now = timezone.now()
        stored: dict[str, dict[str, Any]] = {}
        ids = [row.distinct_id for row in rows]
        for start in range(0, len(ids), 500):
            stored.update(
                Profile.objects.filter(distinct_id__in=ids[start : start + 500]).values_list(
                    "distinct_id", "properties"
                )
            )
        to_write: list[tuple[str, str, Any, Any]] = []
        stamp = connection.ops.adapt_datetimefield_value(now)
        created = updated = 0
        for row in rows:
            before = stored.get(row.distinct_id)
            if before is None:
                created += 1
                merged = dict(row.properties)
            else:
                merged = {k: v for k, v in before.items() if k not in row.removals}
                merged.update(row.properties)
                if merged == before:
                    continue
                updated += 1
            to_write.append((row.distinct_id, json.dumps(merged), stamp, stamp))
        if to_write:
            # Plain executemany: model instances and bulk_create cost more than the writes.
            with connection.cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO {self.table} (distinct_id, properties, created_at, updated_at) "
                    "VALUES (%s, %s, %s, %s) ON CONFLICT (distinct_id) DO UPDATE SET "
                    "properties = excluded.properties, updated_at = excluded.updated_at",
                    to_write,
                )
        return created, updated, len(rows) - created - updated


# What a database (or its driver) raises for a value it cannot store: PostgreSQL's DataError
# (NaN, NUL), SQLite's failed JSON_VALID check, text that is not encodable as UTF-8, integers
# SQLite cannot bind.
_ROW_REFUSALS = (DataError, IntegrityError, UnicodeEncodeError, OverflowError)
