"""Plan a run: stream the cohort's members, normalise identities, diff against the synced state.

Normalising runs in Python (it is the connector's rule), so only members whose raw
identity is not already an acknowledged identity of the sync are streamed through it; in
a steady state that is the churn, not the cohort. This relies on normalize_identity being
idempotent (a normalised value normalises to itself), which every connector's is.

A first export (nothing acknowledged yet; PostgreSQL) is planned one range of profile ids
at a time and comes back streamed: the run starts sending the first chunks while the rest
is planned (Plan.more, called by the send loop when it runs out of planned changes).

Per-user skip rows (missing or invalid identity) are capped per run: a cohort where half a
million profiles lack an email would otherwise write half a million rows every 15 minutes.
Every skipped user is counted in SyncRun.skipped_users; the first
COHORTSYNC_SKIP_ROWS_PER_RUN (default 1,000) get a SyncFailure row each (written by the run
ledger), and the plan sample says how many were recorded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import F, Max, Min, QuerySet
from django.db.models.fields.json import KeyTextTransform

from cohorts.models import Profile
from cohorts.selectors import cohort_members
from destinations.base import Connector, PlainIdentity
from destinations.errors import InvalidIdentityError
from syncs import codes
from syncs.engine import staging
from syncs.engine.ledger import RunLedger
from syncs.models import DISTINCT_ID_IDENTITIES, Sync, SyncedMember, SyncRun
from syncs.selectors import sync_has_synced_state

STREAM_CHUNK = 10_000
# A first export is planned in chunks of profile ids, pushed while the next chunk is
# planned: at 1M its whole plan took 5-10 s before the first batch left. Chunks start
# small, so the first batch leaves early, and double up to MAX_CHUNK_IDS (a chunk is
# planned while the batches already handed out are sent: see units.STREAM_RUNWAY_ROWS).
FIRST_CHUNK_IDS = 5_000
MAX_CHUNK_IDS = 50_000
SAMPLE_SIZE = 20
DEFAULT_SKIP_ROWS_PER_RUN = 1000
MISSING_IDENTITY = codes.MISSING_IDENTITY
INVALID_IDENTITY = codes.INVALID_IDENTITY
MAX_IDENTITY_LENGTH = SyncedMember._meta.get_field("identity_value").max_length or 512


@dataclass
class Plan:
    members: int = 0
    adds: int = 0
    removes: int = 0
    skipped: int = 0
    # Of the skipped: members without the identity property (or with an empty value).
    missing: int = 0
    skipped_recorded: int = 0
    sample_adds: list[dict[str, Any]] = field(default_factory=list)
    sample_removes: list[dict[str, Any]] = field(default_factory=list)
    # A streamed plan (first exports): `rest` plans the next chunk while the run pushes
    # (see more()); the counts above grow with every chunk, and at most
    # `unplanned_at_most` changes are still to come.
    rest: Callable[[], bool] | None = None
    unplanned_at_most: int = 0
    # The last change kept in the run's plan record (RunLedger.plan_record).
    recorded_seq: int = 0

    @property
    def total(self) -> int:
        return self.adds + self.removes

    @property
    def streamed(self) -> bool:
        return self.rest is not None

    @property
    def complete(self) -> bool:
        """Every member is planned (a streamed plan: once its last chunk is)."""
        return self.unplanned_at_most == 0

    def more(self) -> bool:
        """Plan the next chunk of a streamed plan; False once everything is planned."""
        return self.rest is not None and self.rest()

    @property
    def total_at_most(self) -> int:
        """The final total, or a bound of it that the connector sizes batches by alike
        (see plan_build)."""
        return self.total + self.unplanned_at_most

    def sample(self) -> dict[str, Any]:
        return {
            "adds": self.sample_adds,
            "removes": self.sample_removes,
            "members": self.members,
            "skipped_recorded": self.skipped_recorded,
        }


def _members(sync: Sync) -> QuerySet[Profile]:
    """The cohort's members annotated with `_identity` (raw, before normalisation) and `_pid`."""
    if sync.identity_property in DISTINCT_ID_IDENTITIES:
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


def _plain_identity(connector: Connector) -> PlainIdentity | None:
    """The connector's pattern for raw values that normalise to themselves, when it has one
    and the database can use it: a first export of a million members then normalises in
    the database, and only the odd values go through normalize_identity."""
    plain = connector.plain_identity
    if plain is None or not staging.plain_identity_supported():
        return None
    return PlainIdentity(pattern=plain.pattern, max_length=min(plain.max_length, MAX_IDENTITY_LENGTH))


def _unknown_normalise(
    connector: Connector,
    *,
    plan: Plan,
    skipped: list[tuple[int, Any, str, str]],
    skip_cap: int,
    missing_message: str,
    heartbeat: Callable[[], None],
    heartbeat_every: float,
) -> None:
    """Normalise the staged members whose raw identity needs it, in Python, into the
    normalised table; members without a usable identity are counted (and the first
    `skip_cap` kept in `skipped`)."""
    last_beat = time.monotonic()
    for chunk in staging.staging_raw_unknown(chunk_size=STREAM_CHUNK):
        normalised: list[tuple[str, int]] = []
        for raw, profile_id in chunk:
            identity = _identity_or_skip(connector, raw, missing_message)
            if isinstance(identity, tuple):
                plan.skipped += 1
                plan.missing += identity[0] == MISSING_IDENTITY
                if len(skipped) < skip_cap:
                    skipped.append((profile_id, raw, *identity))
                continue
            normalised.append((identity, profile_id))
        staging.staging_normalised_write(normalised)
        if time.monotonic() - last_beat > heartbeat_every:
            heartbeat()
            last_beat = time.monotonic()


def _missing_message(sync: Sync) -> str:
    return (
        f"The profile has no '{sync.identity_property}' property, so there is nothing to "
        "identify it by in the destination."
    )


def _skip_cap() -> int:
    return int(getattr(settings, "COHORTSYNC_SKIP_ROWS_PER_RUN", DEFAULT_SKIP_ROWS_PER_RUN))


def plan_build(
    *,
    run: SyncRun,
    sync: Sync,
    connector: Connector,
    ledger: RunLedger,
    heartbeat_every: float = 30.0,
    stream: bool = False,
) -> Plan:
    """Stage the run's changes (see staging) and return their counts and a sample; skipped
    members are written by `ledger`, which also beats the run's heartbeat.

    `stream`: a first export may come back streamed (Plan.more), planned far enough that
    the connector's send plan for the final total is already known: the same for the
    changes planned so far as for the most there can be.
    """
    heartbeat = ledger.heartbeat
    # Only when nothing is acknowledged yet (first exports): with a synced state the members
    # it does not know are the churn, and one more scan of the cohort would cost the
    # steady-state plan more (~0.5 s at 1M) than normalising the churn in Python does.
    has_state = sync_has_synced_state(sync_id=sync.pk)
    plain = None if has_state else _plain_identity(connector)
    retry_of_run_id = run.retry_of_id if run.trigger == SyncRun.Trigger.RETRY else None
    # A first export (nothing acknowledged, not a retry) is every member: the plain ones go
    # straight to the changes table, only the odd ones through normalize_identity.
    if plain is not None and retry_of_run_id is None:
        return _first_export_plan(sync=sync, connector=connector, plain=plain, stream=stream,
                                  ledger=ledger, heartbeat_every=heartbeat_every)
    plan = Plan()
    skip_cap = _skip_cap()
    missing_message = _missing_message(sync)
    staging.staging_create()
    # A steady-state run stages only members that are not acknowledged members (the churn,
    # a few thousand), not the whole cohort: at 1M that was most of the plan.
    churn_only = (
        has_state and retry_of_run_id is None and not run.is_full_resync and sync.mode == Sync.Mode.DYNAMIC
    )
    members = _members(sync)
    gone = 0
    if churn_only:
        staged, gone = staging.staging_churn_load(members=members, sync_id=sync.pk)
    else:
        staged = staging.staging_raw_load(members=members, sync_id=sync.pk, plain=plain, has_state=has_state)
    if plain is not None:
        staging.staging_plain_normalise()
    heartbeat()
    missing_count, missing_ids = staging.staging_raw_missing(limit=skip_cap)
    plan.skipped += missing_count
    plan.missing += missing_count
    skipped: list[tuple[int, Any, str, str]] = [
        (profile_id, None, MISSING_IDENTITY, missing_message) for profile_id in missing_ids
    ]
    _unknown_normalise(
        connector, plan=plan, skipped=skipped, skip_cap=skip_cap, missing_message=missing_message,
        heartbeat=heartbeat, heartbeat_every=heartbeat_every,
    )
    if retry_of_run_id is not None:
        # A retry sends the failed users only: the members without a usable identity were
        # skipped (and reported) by the run it retries, not by this one.
        plan.skipped = plan.missing = 0
        skipped = []
    staging.staging_index()
    staging.staging_changes_compute(
        sync_id=sync.pk,
        full_resync=run.is_full_resync,
        retry_of_run_id=retry_of_run_id,
        retry_non_retriable=run.retry_non_retriable,
        # A one-time export writes today's members; it never clears anyone it wrote before.
        include_removes=sync.mode == Sync.Mode.DYNAMIC,
        gone_staged=churn_only,
    )
    if churn_only:
        # Members, counted without staging them: the staged ones plus the acknowledged
        # members that a member has as its raw identity, every acknowledged member but the
        # gone ones (by identity: profiles sharing one count once). One reached through
        # normalising is gone, so its member counts once, as staged.
        acknowledged = SyncedMember.objects.filter(sync_id=sync.pk, is_member=True).count()
        staged += acknowledged - gone
    plan.members = staged
    staging.staging_changes_index()
    plan.adds, plan.removes = staging.staging_changes_counts()
    ledger.plan_record(plan)
    ledger.skips_record(skipped)
    plan.skipped_recorded = len(skipped)
    _sample(plan)
    return plan


class _FirstExportChunks:
    """Plans a first export one range of profile ids at a time, into a changes table that
    keeps every identity once (the first chunk to hold it keeps it; within a chunk the
    lowest profile id, a plain member before a normalised one). Profiles created after
    the run started are left to the next run."""

    def __init__(
        self,
        *,
        sync: Sync,
        connector: Connector,
        plain: PlainIdentity,
        plan: Plan,
        ledger: RunLedger,
        heartbeat_every: float,
    ) -> None:
        self._sync, self._connector, self._plain, self._plan = sync, connector, plain, plan
        self._ledger, self._heartbeat_every = ledger, heartbeat_every
        self._members = _members(sync)
        self._skip_cap = _skip_cap()
        self._missing_message = _missing_message(sync)
        bounds = Profile.objects.aggregate(first=Min("pk"), last=Max("pk"))
        self._next_id: int = bounds["first"] or 0
        self._last_id: int = bounds["last"] if bounds["last"] is not None else self._next_id - 1
        self._span = FIRST_CHUNK_IDS
        self._note_unplanned()

    @property
    def done(self) -> bool:
        return self._next_id > self._last_id

    def _note_unplanned(self) -> None:
        # Every profile left is at most one change.
        self._plan.unplanned_at_most = max(0, self._last_id - self._next_id + 1)

    def more(self) -> bool:
        """Plan the next chunk; False when every chunk is planned."""
        if self.done:
            return False
        first, end = self._next_id, min(self._next_id + self._span, self._last_id + 1)
        self._next_id, self._span = end, min(self._span * 2, MAX_CHUNK_IDS)
        plan = self._plan
        staging.staging_chunk_clear()
        plan.members += staging.staging_raw_load(
            members=self._members.filter(pk__gte=first, pk__lt=end), sync_id=self._sync.pk, plain=self._plain,
            has_state=False,
        )
        plan.adds += staging.staging_plain_adds()
        missing_count, missing_ids = staging.staging_raw_missing(limit=self._skip_cap - plan.skipped_recorded)
        plan.skipped += missing_count
        plan.missing += missing_count
        skipped: list[tuple[int, Any, str, str]] = [
            (profile_id, None, MISSING_IDENTITY, self._missing_message) for profile_id in missing_ids
        ]
        _unknown_normalise(
            self._connector, plan=plan, skipped=skipped, skip_cap=self._skip_cap - plan.skipped_recorded,
            missing_message=self._missing_message, heartbeat=self._ledger.heartbeat,
            heartbeat_every=self._heartbeat_every,
        )
        plan.adds += staging.staging_normalised_adds()
        self._ledger.plan_record(plan)
        self._ledger.skips_record(skipped)
        plan.skipped_recorded += len(skipped)
        self._note_unplanned()
        return True


def _first_export_plan(
    *,
    sync: Sync,
    connector: Connector,
    plain: PlainIdentity,
    stream: bool,
    ledger: RunLedger,
    heartbeat_every: float,
) -> Plan:
    plan = Plan()
    staging.staging_create(streamed=True)
    chunks = _FirstExportChunks(sync=sync, connector=connector, plain=plain, plan=plan,
                                ledger=ledger, heartbeat_every=heartbeat_every)
    while chunks.more():
        # Streamed once there is something to send and the send plan is settled: the send
        # plan is a step function of the total (Connector.send_plan), so when the changes
        # planned so far and the most there can be get the same plan, every total between
        # them does.
        if stream and plan.total and connector.send_plan(plan.total) == connector.send_plan(plan.total_at_most):
            if not chunks.done:
                plan.rest = chunks.more
            break
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
