"""One run from claim to finish: validate the target while planning, guard, push, record."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import F
from django.db.models.expressions import Combinable
from django.utils import timezone

from cohorts.models import Cohort
from cohorts.rules import RuleError
from cohortsync_site.database import statistics_refresh
from destinations.base import Connector, SyncTarget
from destinations.errors import DestinationError
from destinations.registry import connector_for
from syncs.engine import staging
from syncs.engine.file_pushing import files_push
from syncs.engine.planning import Plan, plan_build
from syncs.engine.pushing import PlanBatches, PushResult, error_code, plan_push, run_scrubber
from syncs.models import RunStatus, Sync, SyncedMember, SyncFailure, SyncRun
from syncs.run_events import run_finished_notify

logger = logging.getLogger(__name__)

REMOVAL_GUARD_CODE = "removal_guard"
# Every member was skipped: nothing identifies any of them in the destination.
NO_IDENTITIES_CODE = "no_identities"
# After this many acknowledged users the synced state's planner statistics are refreshed.
ANALYZE_AFTER_ACKNOWLEDGED = 50_000


@dataclass(frozen=True)
class GuardVerdict:
    holds: bool
    acknowledged: int
    ratio: float
    reason: str = ""


def run_claim(*, run_id: int) -> bool:
    """queued -> running, atomically; False when another worker (or a re-delivery) got it."""
    now = timezone.now()
    claimed = SyncRun.objects.filter(pk=run_id, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING,
        started_at=now,
        heartbeat_at=now,
        finished_at=None,
        attempted_adds=0,
        succeeded_adds=0,
        failed_adds=0,
        attempted_removes=0,
        succeeded_removes=0,
        failed_removes=0,
        skipped_users=0,
        api_calls=0,
        error_code="",
        error_message="",
    )
    return claimed == 1


def run_execute(*, run_id: int) -> SyncRun:
    """Claim the run and carry it out in this process; a run already claimed is left alone."""
    if not run_claim(run_id=run_id):
        return SyncRun.objects.get(pk=run_id)
    run = SyncRun.objects.select_related("sync", "sync__destination", "sync__cohort").get(pk=run_id)
    # An approved run was planned once already (to show the guard): start its audit afresh.
    SyncFailure.objects.filter(run_id=run.pk).delete()
    try:
        _execute(run)
    except Exception:
        logger.exception("Run %s of sync %s failed unexpectedly", run.pk, run.sync_id)
        _finish(
            run,
            RunStatus.FAILED,
            code="internal_error",
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


def _execute(run: SyncRun) -> None:
    sync = run.sync
    refresh_error = _sql_cohort_refresh(sync)
    if refresh_error:
        _finish(run, RunStatus.FAILED, code="cohort_refresh_failed", message=refresh_error)
        return
    try:
        connector = connector_for(sync.destination)
    except DestinationError as exc:
        _finish(run, RunStatus.FAILED, code=error_code(exc), message=f"{exc.message} Nothing was sent.")
        return
    # Connectors may be shared (tests) or pooled later: count only this run's calls.
    baseline = connector.api_calls

    def calls() -> int:
        return connector.api_calls - baseline

    target = SyncTarget(
        field=sync.target_field,
        identity_property=sync.identity_property,
        options=dict(sync.options or {}),
    )

    def heartbeat() -> None:
        SyncRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now(), api_calls=calls())

    # The target is validated (destination calls only, often seconds of them) while the plan
    # is built (the database only): neither needs the other, and nothing is sent before both
    # are done. A dry run never contacts the destination: validating may create the target
    # column, and a preview must change nothing anywhere.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"run{run.pk}-validate") as pool:
        validating = None if run.is_dry_run else pool.submit(_validate, connector, target)
        rule_error: RuleError | None = None
        try:
            # A dry run's counts are the preview: it is planned whole.
            plan = plan_build(run=run, sync=sync, connector=connector, heartbeat=heartbeat,
                              stream=not run.is_dry_run)
        except RuleError as exc:
            rule_error = exc
        batches: PlanBatches | None = None
        sends_files = False
        if validating is not None and rule_error is None and plan.total:
            if plan.streamed:
                _planned_counts_kept_current(run, plan)
            sends_files = _sends_files(connector, target, plan)
            if not sends_files:
                # While the target is still being validated, the first batches are read and
                # converted (most of what precedes their requests); nothing is sent before
                # validation succeeds.
                batches = PlanBatches(connector=connector, target=target, total_changes=plan.total_at_most,
                                      streamed=plan if plan.streamed else None)
                batches.read_ahead(batches=max(1, int(connector.max_concurrency)), until=validating.done)
        if validating is not None:
            try:
                validating.result()
            except DestinationError as exc:
                if rule_error is None:
                    # The plan was made (and its skipped users recorded): its counts stand.
                    SyncRun.objects.filter(pk=run.pk).update(
                        planned_adds=plan.adds, planned_removes=plan.removes, skipped_users=plan.skipped
                    )
                _finish(run, RunStatus.FAILED, code=error_code(exc), message=f"{exc.message} Nothing was sent.",
                        api_calls=calls())
                return
    if rule_error is not None:
        _finish(run, RunStatus.FAILED, code="invalid_rules",
                message=f"The cohort '{sync.cohort.name}' has invalid rules: {rule_error} Nothing was sent.",
                api_calls=calls())
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
    SyncRun.objects.filter(pk=run.pk).update(
        planned_adds=plan.adds,
        planned_removes=plan.removes,
        skipped_users=plan.skipped,
        plan_sample=sample,
        heartbeat_at=timezone.now(),
        api_calls=calls(),
        # Before sending; _finish moves it by what the run acknowledged.
        acknowledged_members=verdict.acknowledged,
    )
    if plan.members and plan.skipped >= plan.members:
        _finish(run, RunStatus.FAILED, code=NO_IDENTITIES_CODE, message=_no_identities_message(sync, plan),
                api_calls=calls())
        return
    if run.is_dry_run:
        _finish(run, RunStatus.SUCCEEDED, api_calls=calls())
        return
    if verdict.holds:
        _await_approval(run, verdict, calls())
        return
    if plan.total == 0:
        _finish(run, RunStatus.SUCCEEDED, api_calls=calls())
        return
    if _cancel_requested(run):
        _finish_cancelled(run, calls(), sent=0, plan=plan)
        return
    push_arguments: dict[str, Any] = {
        "run": run,
        "connector": connector,
        "target": target,
        "total_changes": plan.total_at_most,
        "heartbeat": heartbeat,
        "cancel_requested": lambda: _cancel_requested(run),
        "api_calls": calls,
        "streamed": plan if plan.streamed else None,
    }
    if sends_files:
        result = files_push(**push_arguments)
    else:
        result = plan_push(**push_arguments, batches=batches)
    if plan.streamed:
        # The rest of the plan was made while pushing: the counts are final only now.
        _planned_counts_record(run, plan, sample=True)
    if result.succeeded >= ANALYZE_AFTER_ACKNOWLEDGED:
        statistics_refresh(SyncedMember)
    _finish_pushed(run, calls(), plan, result)


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


def _sends_files(connector: Connector, target: SyncTarget, plan: Plan) -> bool:
    """Connectors that import files (Marketo bulk) say so once they know the run's size
    (which also puts the connector in the mode its batches belong to)."""
    if not hasattr(connector, "bulk_file"):
        return False
    connector.batch_size(plan.total_at_most)
    return connector.bulk_file(target) is not None


def _planned_counts_kept_current(run: SyncRun, plan: Plan) -> None:
    """A streamed plan grows while the run pushes: the run's planned counts follow each
    chunk, so its page never shows more users attempted than planned."""
    rest = plan.rest
    if rest is None:
        return

    def rest_recorded() -> bool:
        planned = rest()
        if planned:
            _planned_counts_record(run, plan)
        return planned

    plan.rest = rest_recorded


def _planned_counts_record(run: SyncRun, plan: Plan, *, sample: bool = False) -> None:
    values: dict[str, Any] = {"planned_adds": plan.adds, "skipped_users": plan.skipped}
    if sample:
        values["plan_sample"] = plan.sample()
    SyncRun.objects.filter(pk=run.pk).update(**values)


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


def _await_approval(run: SyncRun, verdict: GuardVerdict, api_calls: int) -> None:
    SyncRun.objects.filter(pk=run.pk).update(
        status=RunStatus.AWAITING_APPROVAL,
        heartbeat_at=timezone.now(),
        api_calls=api_calls,
        error_code=REMOVAL_GUARD_CODE,
        error_message=f"{verdict.reason} Nothing was sent. Check the cohort; approve the run "
        "to send these changes, or reject it.",
    )
    run_finished_notify(run_id=run.pk, status=RunStatus.AWAITING_APPROVAL)


def _cancel_requested(run: SyncRun) -> bool:
    return SyncRun.objects.filter(pk=run.pk, cancel_requested_at__isnull=False).exists()


def _finish(
    run: SyncRun,
    status: str,
    *,
    code: str = "",
    message: str = "",
    api_calls: int | None = None,
) -> None:
    now = timezone.now()
    scrub = run_scrubber(run)
    values: dict[str, object] = {
        "status": status,
        "finished_at": now,
        "heartbeat_at": now,
        "error_code": scrub(code)[:64],
        "error_message": scrub(message),
    }
    if api_calls is not None:
        values["api_calls"] = api_calls
    values["acknowledged_members"] = _acknowledged_members_at_end(run)
    SyncRun.objects.filter(pk=run.pk).update(**values)
    run_finished_notify(run_id=run.pk, status=status)


def _acknowledged_members_at_end(run: SyncRun) -> int | Combinable:
    """The sync's acknowledged members once the run ends (the trend on the sync page),
    without counting a million rows again: the guard's count when the run was planned,
    plus the adds and minus the removes the run acknowledged, since every planned add was
    not a member and every planned remove was. A full resync re-sends members, so it
    counts. Stays empty for a run that ended before it was planned."""
    if run.is_full_resync:
        return SyncedMember.objects.filter(sync_id=run.sync_id, is_member=True).count()
    return F("acknowledged_members") + F("succeeded_adds") - F("succeeded_removes")


def _finish_cancelled(run: SyncRun, api_calls: int, *, sent: int, plan: Plan) -> None:
    run.refresh_from_db(fields=["cancelled_by"])
    who = f" by {run.cancelled_by}" if run.cancelled_by_id else ""
    if plan.complete:
        sent_text = f"{sent:,} of {plan.total:,} changes were sent"
    else:  # a streamed first export cancelled before its whole cohort was planned
        sent_text = (
            f"{sent:,} changes were sent, of {plan.total:,} planned so far (the rest of the cohort "
            "was not planned yet)"
        )
    _finish(
        run,
        RunStatus.CANCELLED,
        code="cancelled",
        message=f"Cancelled{who} after {sent_text}. The next run sends the rest.",
        api_calls=api_calls,
    )


def _failure_summary(result: PushResult, plan: Plan) -> str:
    parts = [
        f"{count:,} × {code} ({result.failure_messages.get(code, '')})"
        for code, count in result.failure_codes.most_common(3)
    ]
    more = "" if len(result.failure_codes) <= 3 else f" and {len(result.failure_codes) - 3} other codes"
    return (
        f"{result.failed:,} of {plan.total:,} users failed: {'; '.join(parts)}{more}. They are "
        "sent again by the next run; “Retry failed users” re-sends only them."
    )


def _finish_pushed(run: SyncRun, api_calls: int, plan: Plan, result: PushResult) -> None:
    top_code = result.failure_codes.most_common(1)[0][0] if result.failure_codes else ""
    if result.stop is not None:
        message = result.stop.message
        if result.succeeded:
            message = f"{message} {result.succeeded:,} users were acknowledged before it stopped and are kept."
        _finish(run, result.stop.status, code=result.stop.code, message=message, api_calls=api_calls)
    elif result.cancelled:
        _finish_cancelled(run, api_calls, sent=result.succeeded + result.failed, plan=plan)
    elif result.failed and not result.succeeded:
        _finish(run, RunStatus.FAILED, code=top_code, message=_failure_summary(result, plan), api_calls=api_calls)
    elif result.failed:
        _finish(run, RunStatus.PARTIAL, code=top_code, message=_failure_summary(result, plan), api_calls=api_calls)
    else:
        _finish(run, RunStatus.SUCCEEDED, api_calls=api_calls)
