"""The API calls a run of the `sfmc_data_extension` kind makes (KindSpec.project_calls),
counted as DataExtensionConnector sends them: its send plan, then each batch as a rowset or
an async upsert."""

from __future__ import annotations

from destinations.kindspec import CallCount, CallProjection, PlannedSend
from destinations.sfmc_data_extension.connector import FIELD_POLL_DELAYS
from destinations.sfmc_data_extension.spec import DataExtensionOptions


def project_calls(send: PlannedSend) -> CallProjection:
    options = DataExtensionOptions.of(send.options)
    parts = [CallCount.exactly("to read the data extension and its columns", 2)]
    if not send.target_confirmed and send.sync_options.get("create_missing_field", True):
        # A column that does not exist yet is created, then the columns are read again
        # until it appears (at most once more per wait).
        parts.append(CallCount(
            "to create the column if it does not exist yet and read the columns until it appears",
            0, 1 + 1 + len(FIELD_POLL_DELAYS),
        ))
    rowsets, jobs = batches_by_endpoint(send.total, options)
    if rowsets:
        parts.append(CallCount.exactly(f"for rowset upserts (up to {options.rowset_batch_size} rows each)", rowsets))
    if jobs:
        parts.append(CallCount.at_least(
            f"for asynchronous upserts (up to {options.async_batch_size:,} rows each; more when the "
            "rows of one pass 5 MB)", jobs,
        ))
        parts.append(CallCount.at_least(
            "for status polls of the asynchronous upserts (one per upsert if SFMC is done at the first; "
            "more while it works, and result pages for rows it rejects)", jobs,
        ))
    return CallProjection(tuple(parts))


def batches_by_endpoint(total: int, options: DataExtensionOptions) -> tuple[int, int]:
    """(rowset calls, async upserts) of a run of `total` changes: the connector's send plan
    cuts batches of rowset_batch_size (up to async_threshold changes) or async_batch_size
    (above it), and push() writes a batch of at most min(rowset_batch_size,
    async_threshold) rows as one rowset, any larger one as one async upsert."""
    if total <= 0:
        return 0, 0
    size = options.rowset_batch_size if total <= options.async_threshold else options.async_batch_size
    full, tail = divmod(total, size)
    lengths = [(size, full)] + ([(tail, 1)] if tail else [])
    rowset_most = min(options.rowset_batch_size, options.async_threshold)
    rowsets = sum(count for length, count in lengths if length <= rowset_most)
    jobs = sum(count for length, count in lengths if length > rowset_most)
    return rowsets, jobs
