"""The `marketo` kind's projected API calls (destinations.marketo.projection): the sync
endpoint up to bulk_threshold changes, then import files cut where the engine cuts them."""

from __future__ import annotations

from typing import Any

from destinations.kindspec import CallProjection, PlannedSend
from destinations.marketo import bulk
from destinations.marketo.projection import project_calls
from destinations.marketo.settings import MarketoOptions

FIELD = "cohortProUsers"


def _send(adds: int, removes: int = 0, email_length: int = 30, **options: Any) -> PlannedSend:
    return PlannedSend(
        adds=adds, removes=removes, options=MarketoOptions.parse(options), settings={}, sync_options={},
        target_field=FIELD, identity_lengths=lambda: (adds * email_length, removes * email_length),
    )


def _part(projection: CallProjection, starts: str) -> tuple[int, int | None]:
    found = [(p.minimum, p.maximum) for p in projection.parts if p.what.startswith(starts)]
    return found[0] if found else (0, 0)


def test_the_sync_endpoint_takes_one_call_per_batch_up_to_the_bulk_threshold() -> None:
    for total, calls in ((0, 1), (1, 2), (300, 2), (301, 3), (600, 3), (50_000, 1 + 167)):
        projection = project_calls(_send(total))
        assert (projection.minimum, projection.maximum) == (calls, calls), total
    assert project_calls(_send(5, batch_size=2)).minimum == 1 + 3


def test_above_the_bulk_threshold_it_is_import_files_and_polls_of_them() -> None:
    projection = project_calls(_send(40, 1, bulk_threshold=40))

    assert _part(projection, "to create bulk import files") == (1, None)
    assert _part(projection, "for status polls") == (1, None)
    assert (projection.minimum, projection.maximum) == (3, None)
    assert projection.text() == "at least 3 API calls"


def _files_the_engine_cuts(rows: int, email_length: int) -> int:
    """Files as syncs.engine.units.FileUnits fills them: rows until one does not fit."""
    email = "a" * (email_length - len("@example.com")) + "@example.com"
    pending = [(email, True)] * rows
    files = 0
    while pending:
        file = bulk.CsvFile(field=FIELD)
        taken = file.add_many(pending)
        pending = pending[taken:]
        files += 1
    return files


def test_files_are_counted_as_the_engine_cuts_them_at_10_mb() -> None:
    header = len(bulk.csv_line(["email", FIELD]))
    fits = (bulk.MAX_FILE_BYTES - header) // (30 + len(",true\r\n"))
    for rows in (fits, fits + 1):
        projection = project_calls(_send(rows, bulk_threshold=1))
        assert _part(projection, "to create bulk import files")[0] == _files_the_engine_cuts(rows, 30), rows
    assert _part(project_calls(_send(fits + 1, bulk_threshold=1)), "to create bulk import files")[0] == 2
