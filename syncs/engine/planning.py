"""Plan a run: stream the cohort's members, normalise identities, diff against the synced state.

Per-user skip rows (missing or invalid identity) are capped per run: a cohort where half a
million profiles lack an email would otherwise write half a million rows every 15 minutes.
Every skipped user is counted in SyncRun.skipped_users; the first
COHORTSYNC_SKIP_ROWS_PER_RUN (default 1,000) get a SyncFailure row each, and the plan
sample says how many were recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models.fields.json import KeyTextTransform

from cohorts.models import Profile
from cohorts.selectors import cohort_members
from destinations.base import Connector
from destinations.errors import InvalidIdentityError
from syncs.engine import staging
from syncs.models import DISTINCT_ID_IDENTITY, Sync, SyncFailure, SyncRun

STREAM_CHUNK = 10_000
SAMPLE_SIZE = 20
DEFAULT_SKIP_ROWS_PER_RUN = 1000
MISSING_IDENTITY = "missing_identity"
INVALID_IDENTITY = "invalid_identity"


@dataclass
class Plan:
    members: int = 0
    adds: int = 0
    removes: int = 0
    skipped: int = 0
    skipped_recorded: int = 0
    sample_adds: list[dict[str, Any]] = field(default_factory=list)
    sample_removes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.adds + self.removes

    def sample(self) -> dict[str, Any]:
        return {
            "adds": self.sample_adds,
            "removes": self.sample_removes,
            "members": self.members,
            "skipped_recorded": self.skipped_recorded,
        }


def _member_rows(sync: Sync) -> Iterator[tuple[int, str, Any]]:
    """(profile id, distinct id, raw identity) for every member, streamed in chunks."""
    members = cohort_members(sync.cohort).order_by()
    if sync.identity_property == DISTINCT_ID_IDENTITY:
        rows = members.values_list("pk", "distinct_id", "distinct_id")
    else:
        # KeyTextTransform rather than a "properties__<name>" lookup: property names may
        # contain "__" or "$".
        rows = members.annotate(
            _identity=KeyTextTransform(sync.identity_property, "properties")
        ).values_list("pk", "distinct_id", "_identity")
    return rows.iterator(chunk_size=STREAM_CHUNK)


def _skip_row(run: SyncRun, profile_id: int, distinct_id: str, raw: Any, code: str, message: str) -> SyncFailure:
    return SyncFailure(
        run_id=run.pk,
        profile_id=profile_id,
        distinct_id=distinct_id,
        identity_value="" if raw is None else str(raw)[:512],
        operation=SyncFailure.Operation.SKIP,
        code=code[:64],
        message=message,
        retriable=False,
    )


def plan_build(
    *,
    run: SyncRun,
    sync: Sync,
    connector: Connector,
    heartbeat: Callable[[], None],
    heartbeat_every: float = 30.0,
) -> Plan:
    """Stage the run's changes (see staging) and return their counts and a sample."""
    plan = Plan()
    skip_cap = int(getattr(settings, "COHORTSYNC_SKIP_ROWS_PER_RUN", DEFAULT_SKIP_ROWS_PER_RUN))
    skip_rows: list[SyncFailure] = []
    missing_message = (
        f"The profile has no '{sync.identity_property}' property, so there is nothing to "
        "identify it by in the destination."
    )
    staging.staging_create()
    buffer: list[tuple[str, int]] = []
    last_beat = time.monotonic()
    for profile_id, distinct_id, raw in _member_rows(sync):
        plan.members += 1
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            plan.skipped += 1
            if len(skip_rows) < skip_cap:
                skip_rows.append(_skip_row(run, profile_id, distinct_id, raw, MISSING_IDENTITY, missing_message))
            continue
        try:
            identity = connector.normalize_identity(raw)
        except InvalidIdentityError as exc:
            plan.skipped += 1
            if len(skip_rows) < skip_cap:
                skip_rows.append(
                    _skip_row(run, profile_id, distinct_id, raw, exc.code or INVALID_IDENTITY, exc.message)
                )
            continue
        buffer.append((identity, profile_id))
        if len(buffer) >= STREAM_CHUNK:
            staging.staging_members_write(buffer)
            buffer = []
            if time.monotonic() - last_beat > heartbeat_every:
                heartbeat()
                last_beat = time.monotonic()
    staging.staging_members_write(buffer)
    staging.staging_members_index()
    staging.staging_changes_compute(
        sync_id=sync.pk,
        full_resync=run.is_full_resync,
        retry_of_run_id=run.retry_of_id if run.trigger == SyncRun.Trigger.RETRY else None,
    )
    plan.adds, plan.removes = staging.staging_changes_counts()
    if skip_rows:
        SyncFailure.objects.bulk_create(skip_rows, batch_size=1000)
    plan.skipped_recorded = len(skip_rows)
    _sample(plan)
    return plan


def _sample(plan: Plan) -> None:
    adds = staging.staging_changes_page(after_seq=0, limit=SAMPLE_SIZE, is_member=True)
    distinct_ids = dict(
        Profile.objects.filter(pk__in=[c.profile_id for c in adds]).values_list("pk", "distinct_id")
    )
    plan.sample_adds = [
        {"identity": c.identity, "distinct_id": distinct_ids.get(c.profile_id, "")} for c in adds
    ]
    removes = staging.staging_changes_page(after_seq=0, limit=SAMPLE_SIZE, is_member=False)
    plan.sample_removes = [{"identity": c.identity} for c in removes]
