"""One run from claim to finish: validate the target while planning, guard, send, finish.

The flow: the cohort is planned against the synced state (planning), the connector says
how a plan of that size is sent (its SendPlan), the plan is cut into units (units) that
one loop sends (sending), and the ledger writes what came back and how the run ends.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from cohorts.models import Cohort
from cohorts.rules import RuleError
from cohortsync_site.database import statistics_refresh
from destinations.base import Connector, SyncTarget
from destinations.errors import DestinationError
from destinations.kindspec import CallProjection
from destinations.registry import connector_for
from syncs import codes
from syncs.engine import staging
from syncs.engine.ledger import RunLedger, run_claim
from syncs.engine.planning import Plan, plan_build
from syncs.engine.projection import PROJECTION_KEY, plan_calls_project
from syncs.engine.sending import units_send
from syncs.engine.units import BatchUnits, FileUnits, units_for
from syncs.models import RunStatus, Sync, SyncedMember, SyncRun

__all__ = ["run_claim", "run_execute"]

logger = logging.getLogger(__name__)

# After this many acknowledged users the synced state's planner statistics are refreshed.
ANALYZE_AFTER_ACKNOWLEDGED = 50_000


@dataclass(frozen=True)
class GuardVerdict:
    holds: bool
    acknowledged: int
    ratio: float
    reason: str = ""


def run_execute(*, run_id: int) -> SyncRun:
    """Claim the run and carry it out in this process; a run already claimed is left alone."""
    if not run_claim(run_id=run_id):
        return SyncRun.objects.get(pk=run_id)
    run = SyncRun.objects.select_related("sync", "sync__destination", "sync__cohort").get(pk=run_id)
    ledger = RunLedger(run)
    ledger.start_afresh()
    try:
        _execute(run, ledger)
    except Exception:
        logger.exception("Run %s of sync %s failed unexpectedly", run.pk, run.sync_id)
        ledger.finish(
            RunStatus.FAILED,
            code=codes.INTERNAL_ERROR,
            message="CohortSync hit an unexpected error; see the worker log. Users acknowledged "
            "before it are kept and the rest are sent by the next run.",
        )
    finally:
        try:
            staging.staging_drop()
        except Exception:  # the connection may be gone; temporary tables go with it
            logger.warning("Run %s: could not drop its temporary tables", run.pk, exc_info=True)
    run.refresh_from_db()
    return run


def _execute(run: SyncRun, ledger: RunLedger) -> None:
    sync = run.sync
    refresh_error = _sql_cohort_refresh(sync)
    if refresh_error:
        ledger.finish(RunStatus.FAILED, code=codes.COHORT_REFRESH_FAILED, message=refresh_error)
        return
    try:
        connector = connector_for(sync.destination)
    except DestinationError as exc:
        ledger.finish(RunStatus.FAILED, code=exc.stored_code, message=f"{exc.message} Nothing was sent.")
        return
    # Connectors may be shared (tests) or pooled later: count only this run's calls.
    baseline = connector.api_calls
    ledger.api_calls = lambda: connector.api_calls - baseline
    ledger.keeps_remote_ids = connector.uses_remote_ids
    target = SyncTarget(
        field=sync.target_field,
        identity_property=sync.identity_property,
        options=dict(sync.options or {}),
    )

    # The target is validated (destination calls only, often seconds of them) while the plan
    # is built (the database only): neither needs the other, and nothing is sent before both
    # are done. A dry run never contacts the destination: validating may create the target
    # column, and a preview must change nothing anywhere.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"run{run.pk}-validate") as pool:
        validating = None if run.is_dry_run else pool.submit(_validate, connector, target)
        rule_error: RuleError | None = None
        try:
            # A dry run's counts are the preview: it is planned whole.
            plan = plan_build(run=run, sync=sync, connector=connector, ledger=ledger, stream=not run.is_dry_run)
        except RuleError as exc:
            rule_error = exc
        units: BatchUnits | FileUnits | None = None
        if validating is not None and rule_error is None and plan.total:
            if plan.streamed:
                _planned_counts_kept_current(ledger, plan)
            units = units_for(connector=connector, target=target, sync_id=sync.pk,
                              send_plan=connector.send_plan(plan.total_at_most),
                              streamed=plan if plan.streamed else None)
            if isinstance(units, BatchUnits):
                # While the target is still being validated, the first batches are read and
                # converted (most of what precedes their requests); nothing is sent before
                # validation succeeds.
                units.read_ahead(until=validating.done)
        if validating is not None:
            try:
                validating.result()
            except DestinationError as exc:
                if rule_error is None:
                    # The plan was made (and its skipped users recorded): its counts stand.
                    ledger.planned(plan)
                ledger.finish(RunStatus.FAILED, code=exc.stored_code, message=f"{exc.message} Nothing was sent.")
                return
    if rule_error is not None:
        ledger.finish(RunStatus.FAILED, code=codes.INVALID_RULES,
                      message=f"The cohort '{sync.cohort.name}' has invalid rules: {rule_error} Nothing was sent.")
        return
    verdict = _guard(run, sync, plan)
    sample = plan.sample()
    if verdict.holds or run.is_dry_run:
        sample["guard"] = {
            "holds": verdict.holds,
            "acknowledged_members": verdict.acknowledged,
            "ratio": verdict.ratio,
            "reason": verdict.reason,
        }
        # What sending this plan would cost, while the plan is still staged.
        projection = _calls_projected(sync, plan, run.pk)
        if projection is not None:
            sample[PROJECTION_KEY] = projection.stored()
    # Before sending; the ledger moves the acknowledged members by what the run acknowledged.
    ledger.planned(plan, sample=sample, acknowledged_members=verdict.acknowledged)
    if plan.members and plan.skipped >= plan.members:
        ledger.finish(RunStatus.FAILED, code=codes.NO_IDENTITIES, message=_no_identities_message(sync, plan))
        return
    if run.is_dry_run or plan.total == 0:
        ledger.finish(RunStatus.SUCCEEDED)
        return
    if verdict.holds:
        ledger.await_approval(verdict.reason)
        return
    if _cancel_requested(run):
        ledger.finish_cancelled(sent=0, planned=plan.total, plan_complete=plan.complete)
        return
    assert units is not None
    totals = units_send(
        units=units,
        ledger=ledger,
        heartbeat=ledger.heartbeat,
        cancel_requested=lambda: _cancel_requested(run),
        thread_prefix=f"run{run.pk}",
    )
    if plan.streamed:
        # The rest of the plan was made while sending: the counts are final only now.
        ledger.planned(plan, sample=plan.sample())
    if totals.succeeded >= ANALYZE_AFTER_ACKNOWLEDGED:
        statistics_refresh(SyncedMember)
    ledger.finish_sent(planned=plan.total, plan_complete=plan.complete)


def _sql_cohort_refresh(sync: Sync) -> str:
    """An SQL cohort reads its members from its source before every run; why it could not
    (the run then fails and sends nothing), or ""."""
    cohort = sync.cohort
    if cohort.kind != Cohort.Kind.SQL:
        return ""
    from sources.connections import SourceError
    from sources.services import cohort_refresh

    try:
        cohort_refresh(cohort=cohort)
    except SourceError as exc:
        return (
            f"The SQL cohort '{cohort.name}' could not be refreshed from its source: "
            f"{exc.message} Nothing was sent."
        )
    return ""


def _no_identities_message(sync: Sync, plan: Plan) -> str:
    members = f"{plan.members:,} member{'' if plan.members == 1 else 's'}"
    lacking = f"{plan.missing:,} {'lacks' if plan.missing == 1 else 'lack'} the identity property '{sync.identity_property}'"
    rejected = plan.skipped - plan.missing
    rejects = f"{'has a value' if rejected == 1 else 'have values'} the destination rejects"
    if not rejected:
        why = lacking
    elif not plan.missing:
        why = f"{'it' if rejected == 1 else 'all'} {rejects} for '{sync.identity_property}'"
    else:
        why = f"{lacking} and {rejected:,} {rejects}"
    return (
        f"No member of the cohort '{sync.cohort.name}' could be identified: of its {members}, {why}. "
        "Nothing was sent. Check the sync's identity property (property names are case-sensitive; "
        f"use $distinct_id for the profile's id) or the profiles' data."
    )


def _planned_counts_kept_current(ledger: RunLedger, plan: Plan) -> None:
    """A streamed plan grows while the run sends: the run's planned counts follow each
    chunk, so its page never shows more users attempted than planned."""
    rest = plan.rest
    if rest is None:
        return

    def rest_recorded() -> bool:
        planned = rest()
        if planned:
            ledger.planned(plan)
        return planned

    plan.rest = rest_recorded


def _calls_projected(sync: Sync, plan: Plan, run_id: int) -> CallProjection | None:
    """The plan's projected API calls; None (and a log entry) when they could not be
    projected: a preview's estimate never fails the run."""
    try:
        return plan_calls_project(sync=sync, plan=plan, run_id=run_id)
    except Exception:
        logger.exception("Run %s: the API calls of its plan could not be projected", run_id)
        return None


def _validate(connector: Connector, target: SyncTarget) -> None:
    try:
        connector.validate_target(target)
    finally:
        # The shared token cache may have opened this thread's own database connection.
        connection.close()


def _guard(run: SyncRun, sync: Sync, plan: Plan) -> GuardVerdict:
    ratio = float((sync.options or {}).get("removal_guard_ratio", settings.COHORTSYNC_REMOVAL_GUARD_RATIO))
    acknowledged = SyncedMember.objects.filter(sync_id=sync.pk, is_member=True).count()
    if run.approved_at is not None or acknowledged == 0 or plan.removes == 0:
        return GuardVerdict(False, acknowledged, ratio)
    if plan.members == 0:
        return GuardVerdict(
            True, acknowledged, ratio,
            f"The cohort '{sync.cohort.name}' has no members now, while {acknowledged:,} users "
            "are acknowledged as members: this run would set all of them to false.",
        )
    if plan.removes > ratio * acknowledged:
        share = plan.removes / acknowledged
        return GuardVerdict(
            True, acknowledged, ratio,
            f"This run would remove {plan.removes:,} of {acknowledged:,} acknowledged members "
            f"({share:.0%}), more than the {ratio:.0%} allowed without approval.",
        )
    return GuardVerdict(False, acknowledged, ratio)


def _cancel_requested(run: SyncRun) -> bool:
    return SyncRun.objects.filter(pk=run.pk, cancel_requested_at__isnull=False).exists()
