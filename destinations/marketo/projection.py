"""The API calls a run of the `marketo` kind makes (KindSpec.project_calls), counted as
MarketoConnector sends them: the sync endpoint (one call per batch_size leads) up to
bulk_threshold changes, bulk import files above it."""

from __future__ import annotations

import math

from destinations.kindspec import CallCount, CallProjection, PlannedSend
from destinations.marketo import bulk
from destinations.marketo.connector import MAX_SYNC_BATCH
from destinations.marketo.settings import MarketoOptions

# Bytes a row of the import file takes besides its email: ",true\r\n" / ",false\r\n".
MEMBER_ROW_BYTES = len(",true\r\n")
LEAVER_ROW_BYTES = len(",false\r\n")


def project_calls(send: PlannedSend) -> CallProjection:
    options = MarketoOptions.of(send.options)
    parts = [CallCount.exactly("to read the lead fields (describe)", 1)]
    if not send.total:
        return CallProjection(tuple(parts))
    if uses_bulk_import(send.total, options):
        add_chars, leave_chars = send.identity_lengths()
        row_bytes = add_chars + leave_chars + send.adds * MEMBER_ROW_BYTES + send.removes * LEAVER_ROW_BYTES
        header = len(bulk.csv_line(["email", send.target_field]))
        files = import_files_at_least(row_bytes, header)
        return CallProjection((*parts, *import_calls(files)))
    batch = sync_batch(options)
    parts.append(CallCount.exactly(f"for lead syncs (up to {batch} leads each)", math.ceil(send.total / batch)))
    return CallProjection(tuple(parts))


def uses_bulk_import(total: int, options: MarketoOptions) -> bool:
    """MarketoInstanceConnector.send_plan: files above bulk_threshold changes."""
    return total > options.bulk_threshold


def sync_batch(options: MarketoOptions) -> int:
    return min(MAX_SYNC_BATCH, options.batch_size)


def import_files_at_least(row_bytes: int, header_bytes: int) -> int:
    """Files of at most bulk.MAX_FILE_BYTES (each with its header) that rows of `row_bytes`
    bytes need: at least this many (files are cut before the row that would not fit)."""
    if row_bytes <= 0:
        return 0
    return math.ceil(row_bytes / (bulk.MAX_FILE_BYTES - header_bytes))


def import_calls(files: int) -> tuple[CallCount, ...]:
    if not files:
        return ()
    return (
        CallCount.at_least("to create bulk import files (one per 10 MB of CSV)", files),
        CallCount.at_least(
            "for status polls of the imports (one per file if it is done at the first poll; more while "
            "Marketo queues and imports it, and one more per file with refused rows)", files,
        ),
    )
