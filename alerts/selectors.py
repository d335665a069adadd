"""Read-side questions for alerts: which rules watch a sync, which syncs look stale."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Exists, OuterRef, Subquery

from alerts.models import AlertRule
from syncs.models import RunStatus, Sync, SyncRun

# Runs that count as "the sync ran" for the stale check (a skipped tick or a dry run does not).
RAN_STATUSES = (RunStatus.SUCCEEDED, RunStatus.PARTIAL, RunStatus.FAILED, RunStatus.CANCELLED)


@dataclass(frozen=True)
class RuleScope:
    sync_ids: frozenset[int]
    destination_ids: frozenset[int]

    def covers(self, sync: Sync) -> bool:
        if not self.sync_ids and not self.destination_ids:
            return True
        return sync.pk in self.sync_ids or sync.destination_id in self.destination_ids


def enabled_rules_with_scopes() -> list[tuple[AlertRule, RuleScope]]:
    """Every enabled rule (webhook URL not loaded) with its scope, in three queries."""
    rules = list(AlertRule.objects.filter(enabled=True).defer("webhook_url").order_by("pk"))
    if not rules:
        return []
    ids = [rule.pk for rule in rules]
    syncs: dict[int, set[int]] = {pk: set() for pk in ids}
    destinations: dict[int, set[int]] = {pk: set() for pk in ids}
    for rule_id, sync_id in AlertRule.syncs.through.objects.filter(alertrule_id__in=ids).values_list(
        "alertrule_id", "sync_id"
    ):
        syncs[rule_id].add(sync_id)
    for rule_id, destination_id in AlertRule.destinations.through.objects.filter(
        alertrule_id__in=ids
    ).values_list("alertrule_id", "destination_id"):
        destinations[rule_id].add(destination_id)
    return [(rule, RuleScope(frozenset(syncs[rule.pk]), frozenset(destinations[rule.pk]))) for rule in rules]


def rules_for_sync(sync: Sync) -> list[AlertRule]:
    return [rule for rule, scope in enabled_rules_with_scopes() if scope.covers(sync)]


@dataclass(frozen=True)
class StaleCandidate:
    sync: Sync
    # When the sync last finished a run (or was created or changed, if later).
    since: dt.datetime
    last_run_id: int | None


def stale_candidates(*, now: dt.datetime) -> list[StaleCandidate]:
    """Enabled dynamic syncs that are neither running (with a live worker) nor waiting for
    approval, with the moment they last showed progress. One query."""
    ran = SyncRun.objects.filter(sync=OuterRef("pk"), is_dry_run=False, status__in=RAN_STATUSES).order_by(
        "-finished_at", "-id"
    )
    alive_since = now - dt.timedelta(minutes=settings.COHORTSYNC_STALE_RUN_MINUTES)
    running = SyncRun.objects.filter(sync=OuterRef("pk"), status=RunStatus.RUNNING, heartbeat_at__gte=alive_since)
    waiting = SyncRun.objects.filter(sync=OuterRef("pk"), status=RunStatus.AWAITING_APPROVAL)
    syncs = (
        Sync.objects.filter(mode=Sync.Mode.DYNAMIC, enabled=True)
        .select_related("cohort", "destination")
        .defer("destination__client_secret")
        .annotate(
            last_finished_at=Subquery(ran.values("finished_at")[:1]),
            last_finished_run_id=Subquery(ran.values("pk")[:1]),
            is_running=Exists(running),
            is_waiting=Exists(waiting),
        )
        .filter(is_running=False, is_waiting=False)
    )
    candidates = []
    for sync in syncs:
        moments = [sync.created_at, sync.updated_at, sync.last_finished_at]  # type: ignore[attr-defined]
        since = max(moment for moment in moments if moment is not None)
        candidates.append(StaleCandidate(sync=sync, since=since, last_run_id=sync.last_finished_run_id))  # type: ignore[attr-defined]
    return candidates
