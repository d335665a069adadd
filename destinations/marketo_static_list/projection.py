"""The API calls a run of the `marketo_static_list` kind makes (KindSpec.project_calls),
counted as StaticListConnector sends them.

A batch (the sync endpoint, up to bulk_threshold changes) costs, for its joining users, a
lead sync and an add to the list; for its leaving users, lookups by email of those whose
lead id the synced state does not keep, and a removal from the list. Above bulk_threshold,
the joining users are imported with the list's id and the leaving users removed by id."""

from __future__ import annotations

import math
from collections.abc import Sequence

from destinations.kindspec import CallCount, CallProjection, PlannedSend
from destinations.marketo.projection import (
    import_calls,
    import_files_at_least,
    sync_batch,
    uses_bulk_import,
)
from destinations.marketo.settings import MarketoOptions, normalize_marketo_base_url
from destinations.marketo_static_list.files import ListImportFile
from destinations.marketo_static_list.lists import MAX_IDS_PER_CALL, lookup_paths

# Bytes a joining user's row takes besides the email: "\r\n".
ROW_BYTES = len("\r\n")


def project_calls(send: PlannedSend) -> CallProjection:
    options = MarketoOptions.of(send.options)
    parts = [CallCount.exactly("to find the static list", 1)]
    if not send.total:
        return CallProjection(tuple(parts))
    base_url = normalize_marketo_base_url(send.settings.get("base_url") or "")
    unknown = list(send.leavers_without_remote_id()) if send.removes else []
    if uses_bulk_import(send.total, options):
        add_chars, _ = send.identity_lengths()
        header = len(ListImportFile().take())
        files = import_files_at_least(add_chars + send.adds * ROW_BYTES, header)
        lookups = _lookups(base_url, [identity for _, identity in unknown])
        parts += import_calls(files)
        if lookups:
            parts.append(CallCount.at_least("for lead lookups by email of leaving users without a known lead id", lookups))
        if send.removes:
            parts.append(CallCount.at_least(
                f"for removals from the list (up to {MAX_IDS_PER_CALL} leads each)", math.ceil(send.removes / MAX_IDS_PER_CALL)
            ))
        return CallProjection(tuple(parts))
    batch = sync_batch(options)
    add_batches = remove_batches = lookups = 0
    at = 0
    for start in range(0, send.total, batch):
        end = min(start + batch, send.total)
        if start < send.adds:
            add_batches += 1
        if end > send.adds:
            remove_batches += 1
            emails = []
            while at < len(unknown) and unknown[at][0] < end:
                emails.append(unknown[at][1])
                at += 1
            lookups += _lookups(base_url, emails)
    if add_batches:
        parts.append(CallCount.exactly(f"for lead syncs of joining users (up to {batch} each)", add_batches))
        parts.append(CallCount.exactly("for adds to the list (one per lead sync)", add_batches))
    if lookups:
        parts.append(CallCount.exactly("for lead lookups by email of leaving users without a known lead id", lookups))
    if remove_batches:
        parts.append(CallCount.exactly(f"for removals from the list (one per batch of up to {batch} leaving users)",
                                       remove_batches))
    return CallProjection(tuple(parts))


def _lookups(base_url: str, emails: Sequence[str]) -> int:
    """Lookups of these emails: at most 300 each, each URL under Marketo's 8 KB."""
    return sum(1 for _ in lookup_paths(base_url, emails)) if emails else 0
