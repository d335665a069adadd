"""A profile import from a source: one run from claim to finish.

The query is streamed from the source in batches and every row goes through the file
import's row path (cohorts.importing: the same checks, the same per-row rejects, the same
set-based merge). With an incremental column, only rows at or past the stored high-water
mark are read (the query is wrapped, see sources.connections.source_query), and the mark
moves only when the run succeeds: a run that fails half-way is read again from the old
mark by the next one, which merging makes harmless.

delete_missing: a full run deletes the profiles this import returned before and no longer
returns (sources.models.ImportedProfile remembers which ids it returned), never a profile
that only another feed created.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import transaction
from django.utils import timezone

from cohorts.importing import (
    DISTINCT_ID_COLUMNS,
    MAX_REJECT_DETAILS,
    ImportReport,
    ProfileRow,
    ProfileRowError,
    profile_row_normalize,
    profiles_upsert,
)
from cohorts.services import profiles_delete
from sources.connections import SourceError, source_query
from sources.models import ImportedProfile, ImportRun, ImportRunStatus, ProfileImport, SourceKind
from sources.values import ValueConversionError, property_value

logger = logging.getLogger(__name__)

BATCH_SIZE = 5000


# --- High-water marks --------------------------------------------------------------------------


def mark_of(value: Any) -> dict[str, Any]:
    """A stored high-water mark: the value in the source's own terms (a naive timestamp
    stays naive), so it is bound back exactly as it was read."""
    if isinstance(value, dt.datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, dt.date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, Decimal):
        return {"type": "decimal", "value": str(value)}
    if isinstance(value, int | float):
        return {"type": "number", "value": value}
    return {"type": "text", "value": str(value)}


def mark_value(mark: dict[str, Any]) -> Any:
    kind, value = mark.get("type"), mark.get("value")
    if kind == "datetime":
        return dt.datetime.fromisoformat(value)
    if kind == "date":
        return dt.date.fromisoformat(value)
    if kind == "decimal":
        return Decimal(value)
    return value


def mark_shown(mark: dict[str, Any] | None) -> Any:
    """The mark as scripts and the admin show it: its value, or None."""
    return None if not mark else mark.get("value")


class _Highest:
    def __init__(self, column: str) -> None:
        self.column = column
        self.value: Any = None

    def observe(self, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(
            value, dt.date | int | float | Decimal | str
        ):
            raise SourceError(
                f"The incremental column '{self.column}' holds {type(value).__name__} values; it "
                "must be a timestamp, a date or an increasing number.",
                code="invalid_incremental_column",
            )
        try:
            if self.value is None or value > self.value:
                self.value = value
        except TypeError:
            raise SourceError(
                f"The incremental column '{self.column}' mixes kinds of values ({self.value!r} "
                f"and {value!r}), e.g. timestamps with and without a time zone.",
                code="invalid_incremental_column",
            ) from None


# --- Columns ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    id_index: int
    properties: list[tuple[int, str]]
    incremental_index: int | None


def _layout(columns: list[str], incremental_column: str) -> _Layout:
    duplicates = sorted({name for name in columns if columns.count(name) > 1})
    if duplicates:
        raise SourceError(
            f"The query returns the column {duplicates[0]!r} more than once; alias one of them.",
            code="invalid_columns",
        )
    ids = [i for i, name in enumerate(columns) if name.lower() in DISTINCT_ID_COLUMNS]
    if len(ids) != 1:
        raise SourceError(
            f"The query must return exactly one distinct_id column (it returns "
            f"{', '.join(columns) or 'no columns'}): e.g. SELECT id AS distinct_id, email AS "
            '"$email", plan FROM users.',
            code="invalid_columns",
        )
    incremental_index = None
    if incremental_column:
        if incremental_column not in columns:
            raise SourceError(
                f"The incremental column '{incremental_column}' is not a column of the query's "
                f"result ({', '.join(columns)}); select it (it becomes a property too).",
                code="invalid_columns",
            )
        incremental_index = columns.index(incremental_column)
    properties = [(i, name) for i, name in enumerate(columns) if i != ids[0]]
    return _Layout(id_index=ids[0], properties=properties, incremental_index=incremental_index)


def source_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise SourceError(
            f"The source's time_zone option {name!r} is not a time zone name such as "
            "'Europe/Paris'.",
            code="invalid_options",
        ) from None


# --- One run ---------------------------------------------------------------------------------


@dataclass
class _Progress:
    rows_read: int = 0


class _SeenIds:
    """Distinct ids this run returned, remembered for delete_missing in batches."""

    def __init__(self, profile_import: ProfileImport, run: ImportRun) -> None:
        self.profile_import = profile_import
        self.run = run
        self.pending: list[str] = []

    def add(self, distinct_id: str) -> None:
        self.pending.append(distinct_id)

    def flush(self) -> None:
        if not self.pending:
            return
        ImportedProfile.objects.bulk_create(
            [
                ImportedProfile(
                    profile_import=self.profile_import, distinct_id=d, last_run_id=self.run.pk
                )
                for d in dict.fromkeys(self.pending)
                if 0 < len(d) <= 255
            ],
            batch_size=1000,
            update_conflicts=True,
            unique_fields=["profile_import", "distinct_id"],
            update_fields=["last_run_id"],
        )
        self.pending = []


def _rows(
    batches: Iterator[list[tuple[Any, ...]]],
    layout: _Layout,
    *,
    zone: ZoneInfo,
    text_datetimes: bool,
    report: ImportReport,
    progress: _Progress,
    highest: _Highest,
    seen: _SeenIds | None,
) -> Iterator[ProfileRow]:
    for batch in batches:
        for values in batch:
            progress.rows_read += 1
            number = progress.rows_read
            if layout.incremental_index is not None:
                highest.observe(values[layout.incremental_index])
            raw_id = values[layout.id_index]
            try:
                distinct_id = property_value(raw_id, zone=zone)
            except ValueConversionError as exc:
                report.reject(number, f"distinct_id: {exc}")
                continue
            if seen is not None and distinct_id is not None:
                seen.add(str(distinct_id).strip())
            properties: dict[str, Any] = {}
            try:
                for index, name in layout.properties:
                    try:
                        properties[name] = property_value(
                            values[index], zone=zone, text_datetimes=text_datetimes
                        )
                    except ValueConversionError as exc:
                        raise ProfileRowError(f"column {name}: {exc}") from None
                yield profile_row_normalize(distinct_id=distinct_id, properties=properties, line=number)
            except ProfileRowError as exc:
                shown = f" (distinct_id {str(distinct_id)[:60]!r})" if distinct_id is not None else ""
                report.reject(number, f"{exc}{shown}")


def import_run_execute(*, run: ImportRun) -> None:
    """Carry out a claimed run (status running) and record its outcome on it."""
    # The password is decrypted when the session opens, where a lost key is reported.
    profile_import = (
        ProfileImport.objects.select_related("source").defer("source__password").get(pk=run.profile_import_id)
    )
    source = profile_import.source
    before = profile_import.high_water_mark
    full = run.is_full or not profile_import.incremental_column
    since = None if full or not before else mark_value(before)
    report = ImportReport(file_format="sql")
    progress = _Progress()
    highest = _Highest(profile_import.incremental_column)
    seen = _SeenIds(profile_import, run) if profile_import.delete_missing else None
    ImportRun.objects.filter(pk=run.pk).update(high_water_mark_before=before)

    def heartbeat(current: ImportReport) -> None:
        if seen is not None:
            seen.flush()
        _counts_record(run, current, progress, heartbeat=True)

    try:
        zone = source_zone(source.time_zone)
        with source_query(
            source,
            sql=profile_import.sql,
            incremental_column=profile_import.incremental_column,
            since=since,
            batch_size=BATCH_SIZE,
        ) as stream:
            layout = _layout(stream.columns, profile_import.incremental_column)
            rows = _rows(
                stream.batches, layout, zone=zone, text_datetimes=source.kind == SourceKind.SQLITE,
                report=report, progress=progress, highest=highest, seen=seen,
            )
            profiles_upsert(rows=rows, report=report, batch_size=BATCH_SIZE, on_progress=heartbeat)
        if seen is not None:
            seen.flush()
    except SourceError as exc:
        written = report.created + report.updated
        kept = (
            f" {written:,} profiles were written before it stopped and are kept; the high-water "
            "mark did not move, so the next run reads them again."
            if written
            else " Nothing was written."
        )
        _finish(run, report, progress, status=ImportRunStatus.FAILED, code=exc.code,
                message=f"{exc.message}{kept}", mark=before)
        return
    deleted, note = 0, ""
    if seen is not None and full:
        deleted, note = _missing_delete(profile_import, run, rows_read=progress.rows_read)
    mark = before
    if highest.value is not None:
        if full or before is None:
            mark = mark_of(highest.value)
        else:
            mark = mark_of(max(highest.value, mark_value(before)))
        ProfileImport.objects.filter(pk=profile_import.pk).update(high_water_mark=mark)
    _finish(run, report, progress, status=ImportRunStatus.SUCCEEDED, deleted=deleted, mark=mark,
            message=note)


def _missing_delete(profile_import: ProfileImport, run: ImportRun, *, rows_read: int) -> tuple[int, str]:
    missing = ImportedProfile.objects.filter(profile_import=profile_import).exclude(last_run_id=run.pk)
    if rows_read == 0 and missing.exists():
        return 0, (
            "The query returned no rows, so nothing was deleted: a query that suddenly returns "
            "nothing is more often broken than right. Delete the profiles in the admin if they "
            "are really gone."
        )
    distinct_ids = list(missing.values_list("distinct_id", flat=True))
    deleted = profiles_delete(distinct_ids=distinct_ids)
    missing.delete()
    return deleted, ""


def _counts_record(run: ImportRun, report: ImportReport, progress: _Progress, *, heartbeat: bool = False) -> None:
    values: dict[str, Any] = {
        "rows_read": progress.rows_read,
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "rejected": report.rejected,
    }
    if heartbeat:
        values["heartbeat_at"] = timezone.now()
    ImportRun.objects.filter(pk=run.pk).update(**values)


def _finish(
    run: ImportRun,
    report: ImportReport,
    progress: _Progress,
    *,
    status: str,
    code: str = "",
    message: str = "",
    deleted: int = 0,
    mark: dict[str, Any] | None = None,
) -> None:
    now = timezone.now()
    with transaction.atomic():
        _counts_record(run, report, progress)
        ImportRun.objects.filter(pk=run.pk).update(
            status=status,
            finished_at=now,
            heartbeat_at=now,
            deleted=deleted,
            rejects=[
                {"row": reject.line, "reason": reject.reason}
                for reject in report.rejects[:MAX_REJECT_DETAILS]
            ],
            high_water_mark=mark,
            error_code=code[:64],
            error_message=message,
        )
