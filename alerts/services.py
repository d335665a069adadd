"""Alert services: turn run outcomes and stale syncs into deliveries, once per change.

For each rule and sync, AlertState holds the sync's condition as the rule last saw it
(ok, failed, partial, awaiting_approval, stale). A run's outcome, or the stale check,
moves it with a conditional UPDATE; only the process that moved it creates a delivery, so
a sync that fails every 15 minutes notifies once, and a re-delivered task notifies nothing.
A move into a problem the rule watches notifies that event; a succeeded run after any
problem notifies `recovered` (if watched). Cancelled, skipped and dry runs move nothing,
and neither does a partial run under the rule's `min_failed_share`.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from alerts.delivery import (
    background_start,
    deliveries_retry_due,
    deliveries_send,
    deliveries_send_after_commit,
)
from alerts.messages import alert_payload, run_message, stale_message, test_payload
from alerts.models import (
    PROBLEM_CONDITIONS,
    TEST_EVENT,
    AlertDelivery,
    AlertEvent,
    AlertRule,
    AlertState,
    SyncCondition,
)
from alerts.selectors import enabled_rules_with_scopes, rules_for_sync, stale_candidates
from syncs.models import RunStatus, Sync, SyncRun

logger = logging.getLogger(__name__)

# The dashboard runs the stale check at most this often (all web processes together).
DASHBOARD_CHECK_SECONDS = 60
DASHBOARD_CHECK_KEY = "alerts:stale-check:dashboard"


def alerts_for_run(*, run_id: int) -> list[int]:
    """Move each watching rule's state for the run's outcome; returns the deliveries created."""
    run = (
        SyncRun.objects.select_related("sync", "sync__cohort", "sync__destination")
        .defer("sync__destination__client_secret")
        .filter(pk=run_id)
        .first()
    )
    if run is None or run.is_dry_run:
        return []
    created: list[int] = []
    for rule in rules_for_sync(run.sync):
        condition = run_condition(run, rule)
        if condition is None:
            continue
        delivery = _move(rule=rule, sync=run.sync, condition=condition, run=run)
        if delivery is not None:
            created.append(delivery.pk)
    return created


def alerts_for_run_deliver(*, run_id: int) -> None:
    """What a finished run triggers: the deliveries are sent by this process right away."""
    deliveries_send_after_commit(alerts_for_run(run_id=run_id))


def run_condition(run: SyncRun, rule: AlertRule) -> str | None:
    """The sync's condition after `run`, as `rule` sees it; None leaves it as it was."""
    if run.status == RunStatus.SUCCEEDED:
        return SyncCondition.OK
    if run.status == RunStatus.FAILED:
        return SyncCondition.FAILED
    if run.status == RunStatus.AWAITING_APPROVAL:
        return SyncCondition.AWAITING_APPROVAL
    if run.status == RunStatus.PARTIAL:
        if rule.min_failed_share is None:
            return SyncCondition.PARTIAL
        failed = run.failed_adds + run.failed_removes
        sent = run.succeeded_adds + run.succeeded_removes + failed
        share = failed / sent if sent else 1.0
        return SyncCondition.PARTIAL if share >= rule.min_failed_share else None
    return None


def alerts_stale_check(*, now: dt.datetime | None = None) -> list[int]:
    """Mark syncs stale for the rules watching `stale` (no finished run for the rule's
    `stale_after_intervals` × the sync's interval); returns the deliveries created."""
    now = now or timezone.now()
    rules = [(rule, scope) for rule, scope in enabled_rules_with_scopes() if rule.watches(AlertEvent.STALE)]
    if not rules:
        return []
    created: list[int] = []
    for candidate in stale_candidates(now=now):
        sync = candidate.sync
        minutes = int((now - candidate.since).total_seconds() // 60)
        for rule, scope in rules:
            if not scope.covers(sync) or minutes < rule.stale_after_intervals * sync.effective_interval_minutes:
                continue
            run = SyncRun.objects.filter(pk=candidate.last_run_id).first() if candidate.last_run_id else None
            delivery = _move(rule=rule, sync=sync, condition=SyncCondition.STALE, run=run,
                             message=stale_message(sync=sync, minutes_since=minutes))
            if delivery is not None:
                created.append(delivery.pk)
    return created


def alerts_stale_check_and_send() -> dict[str, int]:
    """The stale check's schedule: check, then send what it found from this process."""
    created = alerts_stale_check()
    return {"stale_alerts": len(created), **deliveries_send(created)}


def alerts_stale_check_from_dashboard() -> None:
    """Run the stale check from a web process (an admin page load), at most once a minute
    across processes, in a thread: a stopped task cluster runs no schedule, so this is how
    its silence gets noticed. Deliveries due for a retry are sent too: their retry
    schedule stopped with the cluster. The page never waits for it."""
    if not cache.add(DASHBOARD_CHECK_KEY, 1, DASHBOARD_CHECK_SECONDS):
        return
    watched = AlertRule.objects.filter(enabled=True).values_list("events", flat=True)
    stale_watched = any(AlertEvent.STALE in (events or []) for events in watched)
    retries_due = AlertDelivery.objects.filter(
        status=AlertDelivery.Status.PENDING, next_attempt_at__lte=timezone.now()
    ).exists()
    if not stale_watched and not retries_due:
        return  # nothing to do: no thread

    def check() -> None:
        try:
            if stale_watched:
                deliveries_send(alerts_stale_check())
            deliveries_retry_due()
        except Exception as exc:
            logger.error("The stale check from the dashboard failed (%s)", type(exc).__name__, exc_info=True)
        finally:
            connection.close()

    background_start(check, name="alerts-stale-check")


def alert_rule_send_test(*, rule: AlertRule) -> AlertDelivery:
    """Send a test alert through the rule's channel now (one attempt, no retry)."""
    delivery = AlertDelivery.objects.create(rule=rule, event=TEST_EVENT, payload=test_payload(rule), max_attempts=1)
    deliveries_send([delivery.pk])
    delivery.refresh_from_db()
    return delivery


def _move(*, rule: AlertRule, sync: Sync, condition: str, run: SyncRun | None,
          message: str = "") -> AlertDelivery | None:
    """Move (rule, sync) to `condition`; the delivery to send when the rule watches that change."""
    with transaction.atomic():
        state, _ = AlertState.objects.get_or_create(rule=rule, sync=sync)
        previous = state.condition
        if previous == condition:
            return None
        moved = AlertState.objects.filter(pk=state.pk, condition=previous).update(
            condition=condition, run=run, changed_at=timezone.now()
        )
        if not moved:  # another process moved it first and notifies
            return None
        event = _event_for(rule, previous=previous, condition=condition)
        if event is None:
            return None
        if not message and run is not None:
            message = run_message(event=event, sync=sync, run=run, previous=previous)
        return AlertDelivery.objects.create(
            rule=rule, sync=sync, run=run, event=event,
            payload=alert_payload(event=event, sync=sync, run=run, message=message),
        )


def _event_for(rule: AlertRule, *, previous: str, condition: str) -> str | None:
    if condition in PROBLEM_CONDITIONS:
        return condition if rule.watches(condition) else None
    if condition == SyncCondition.OK and previous in PROBLEM_CONDITIONS and rule.watches(AlertEvent.RECOVERED):
        return AlertEvent.RECOVERED
    return None
