"""Plan a run: stream the cohort's members, normalise identities, diff against the synced state.

Normalising runs in Python (it is the connector's rule), so only members whose raw
identity is not already an acknowledged identity of the sync are streamed through it; in
a steady state that is the churn, not the cohort. This relies on normalize_identity being
idempotent (a normalised value normalises to itself), which every connector's is.

Per-user skip rows (missing or invalid identity) are capped per run: a cohort where half a
million profiles lack an email would otherwise write half a million rows every 15 minutes.
Every skipped user is counted in SyncRun.skipped_users; the first
COHORTSYNC_SKIP_ROWS_PER_RUN (default 1,000) get a SyncFailure row each, and the plan
sample says how many were recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import F, QuerySet
from django.db.models.fields.json import KeyTextTransform

from cohorts.models import Profile
from cohorts.selectors import cohort_members
from destinations.base import Connector
from destinations.errors import InvalidIdentityError
from syncs.engine import staging
from syncs.models import DISTINCT_ID_IDENTITY, Sync, SyncedMember, SyncFailure, SyncRun

STREAM_CHUNK = 10_000
SAMPLE_SIZE = 20
DEFAULT_SKIP_ROWS_PER_RUN = 1000
MISSING_IDENTITY = "missing_identity"
MAX_IDENTITY_LENGTH = SyncedMember._meta.get_field("identity_value").max_length or 512
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


def _members(sync: Sync) -> QuerySet[Profile]:
    """The cohort's members annotated with `_identity` (raw, before normalisation) and `_pid`."""
    if sync.identity_property == DISTINCT_ID_IDENTITY:
        identity: Any = F("distinct_id")
    else:
        # KeyTextTransform rather than a "properties__<name>" lookup: property names may
        # contain "__" or "$".
        identity = KeyTextTransform(sync.identity_property, "properties")
    return cohort_members(sync.cohort).order_by().annotate(_identity=identity, _pid=F("pk"))


def _identity_or_skip(connector: Connector, raw: Any, missing_message: str) -> str | tuple[str, str]:
    """The identity to send, or (code, message) saying why the member is skipped."""
    if isinstance(raw, str) and not raw.strip():
        return MISSING_IDENTITY, missing_message
    try:
        identity = connector.normalize_identity(raw)
    except InvalidIdentityError as exc:
        return exc.code or INVALID_IDENTITY, exc.message
    if len(identity) > MAX_IDENTITY_LENGTH:
        return INVALID_IDENTITY, (
            f"The identity is {len(identity)} characters long; CohortSync keeps identities of "
            f"at most {MAX_IDENTITY_LENGTH}."
        )
    return identity


def _plain_identity(connector: Connector) -> staging.PlainIdentity | None:
    """The connector's pattern for raw values that normalise to themselves, when it has one
    and the database can use it: a first export of a million members then normalises in
    the database, and only the odd values go through normalize_identity."""
    pattern = getattr(connector, "plain_identity_pattern", None)
    if not pattern or not staging.plain_identity_supported():
        return None
    length = int(getattr(connector, "plain_identity_max_length", MAX_IDENTITY_LENGTH))
    return staging.PlainIdentity(pattern=pattern, max_length=min(length, MAX_IDENTITY_LENGTH))


def _skips_record(run: SyncRun, skipped: list[tuple[int, Any, str, str]]) -> None:
    if not skipped:
        return
    distinct_ids = dict(
        Profile.objects.filter(pk__in=[s[0] for s in skipped]).values_list("pk", "distinct_id")
    )
    SyncFailure.objects.bulk_create(
        [
            SyncFailure(
                run_id=run.pk,
                profile_id=profile_id,
                distinct_id=distinct_ids.get(profile_id, ""),
                identity_value="" if raw is None else str(raw)[:512],
                operation=SyncFailure.Operation.SKIP,
                code=code[:64],
                message=message,
                retriable=False,
            )
            for profile_id, raw, code, message in skipped
        ],
        batch_size=1000,
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
    missing_message = (
        f"The profile has no '{sync.identity_property}' property, so there is nothing to "
        "identify it by in the destination."
    )
    staging.staging_create()
    # Only when nothing is acknowledged yet (first exports): with a synced state the members
    # it does not know are the churn, and one more scan of the cohort would cost the
    # steady-state plan more (~0.5 s at 1M) than normalising the churn in Python does.
    has_state = SyncedMember.objects.filter(sync_id=sync.pk).exists()
    plain = None if has_state else _plain_identity(connector)
    retry_of_run_id = run.retry_of_id if run.trigger == SyncRun.Trigger.RETRY else None
    # A first export (nothing acknowledged, not a retry) is every member: the plain ones go
    # straight to the changes table, only the odd ones through normalize_identity.
    first_export = plain is not None and retry_of_run_id is None
    # A steady-state run stages only members that are not acknowledged members (the churn,
    # a few thousand), not the whole cohort: at 1M that was most of the plan.
    churn_only = (
        has_state and retry_of_run_id is None and not run.is_full_resync and sync.mode == Sync.Mode.DYNAMIC
    )
    members = _members(sync)
    staged = staging.staging_raw_load(members=members, sync_id=sync.pk, plain=plain, unacknowledged_only=churn_only)
    if first_export:
        # Profile ids are unique: a plain one is its own identity and no two members share it.
        staging.staging_plain_adds(unique=sync.identity_property == DISTINCT_ID_IDENTITY)
    elif plain is not None:
        staging.staging_plain_normalise()
    heartbeat()
    missing_count, missing_ids = staging.staging_raw_missing(limit=skip_cap)
    plan.skipped += missing_count
    skipped: list[tuple[int, Any, str, str]] = [
        (profile_id, None, MISSING_IDENTITY, missing_message) for profile_id in missing_ids
    ]
    last_beat = time.monotonic()
    for chunk in staging.staging_raw_unknown(chunk_size=STREAM_CHUNK):
        normalised: list[tuple[str, int]] = []
        for raw, profile_id in chunk:
            identity = _identity_or_skip(connector, raw, missing_message)
            if isinstance(identity, tuple):
                plan.skipped += 1
                if len(skipped) < skip_cap:
                    skipped.append((profile_id, raw, *identity))
                continue
            normalised.append((identity, profile_id))
        staging.staging_normalised_write(normalised)
        if time.monotonic() - last_beat > heartbeat_every:
            heartbeat()
            last_beat = time.monotonic()
    if first_export:
        staging.staging_index(raw=False)
        staging.staging_normalised_adds()
    else:
        staging.staging_index()
        removes = staging.staging_changes_compute(
            sync_id=sync.pk,
            full_resync=run.is_full_resync,
            retry_of_run_id=retry_of_run_id,
            # A one-time export writes today's members; it never clears anyone it wrote before.
            include_removes=sync.mode == Sync.Mode.DYNAMIC,
            members=members if churn_only else None,
        )
        if churn_only:
            # Members, counted without staging them: the staged ones plus the acknowledged
            # members that stay (by identity: profiles sharing one count once).
            acknowledged = SyncedMember.objects.filter(sync_id=sync.pk, is_member=True).count()
            staged += acknowledged - removes
    plan.members = staged
    staging.staging_changes_index()
    plan.adds, plan.removes = staging.staging_changes_counts()
    _skips_record(run, skipped)
    plan.skipped_recorded = len(skipped)
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
