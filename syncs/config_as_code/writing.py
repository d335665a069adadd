"""Turn validated plans into rows, and keep schedules in step after the commit."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.db import models

from alerts.config_as_code import alert_plan_write
from cohorts.models import Cohort, StaticMembership
from destinations.models import Destination
from sources.models import Source
from syncs.config_as_code.checks import MEMBERSHIP_CHUNK
from syncs.config_as_code.plans import CohortPlan, DestinationPlan, Plan, SyncPlan
from syncs.config_as_code.report import EntryChange
from syncs.config_as_code.source_plans import write_profile_imports, write_sources
from syncs.models import Sync

logger = logging.getLogger(__name__)


def plan_changes(plan: Plan) -> list[EntryChange]:
    changes: list[EntryChange] = []
    groups: list[tuple[str, list[Any]]] = [
        ("sources", plan.sources),
        ("profile_imports", plan.profile_imports),
        ("destinations", plan.destinations),
        ("cohorts", plan.cohorts),
        ("syncs", plan.syncs),
        ("alerts", plan.alerts),
    ]
    for section, plans in groups:
        for entry_plan in plans:
            if entry_plan.existing is None:
                changes.append(EntryChange(section, entry_plan.name, "created"))
            elif entry_plan.changed:
                shown = tuple("field" if f == "target_field" else f for f in entry_plan.changed)
                changes.append(EntryChange(section, entry_plan.name, "updated", shown))
            else:
                changes.append(EntryChange(section, entry_plan.name, "unchanged"))
    return changes


def plan_write(plan: Plan) -> list[int]:
    """Write every planned change; returns the ids of syncs whose schedule may have changed."""
    sources = write_sources(plan.sources)
    destinations = {p.name: _write_destination(p) for p in plan.destinations}
    cohorts = {p.name: _write_cohort(p, sources) for p in plan.cohorts}
    plan.written_import_ids = write_profile_imports(plan.profile_imports, sources)
    changed_sync_ids = []
    for sync_plan in plan.syncs:
        if sync_plan.existing is not None and not sync_plan.changed:
            continue
        cohort = cohorts.get(sync_plan.cohort_name) or Cohort.objects.get(name=sync_plan.cohort_name)
        destination = destinations.get(sync_plan.destination_name) or Destination.objects.get(
            name=sync_plan.destination_name
        )
        changed_sync_ids.append(_write_sync(sync_plan, cohort, destination).pk)
    for alert_plan in plan.alerts:  # after the syncs and destinations they name
        alert_plan_write(alert_plan)
    return changed_sync_ids


def _save_changed(instance: models.Model, changed: list[str]) -> None:
    # update_fields keeps untouched columns (and the encrypted secret) out of the UPDATE.
    instance.save(update_fields=[*changed, "updated_at"])


def _write_destination(destination_plan: DestinationPlan) -> Destination:
    existing = destination_plan.existing
    if existing is None:
        return Destination.objects.create(
            name=destination_plan.name,
            client_secret=destination_plan.secret or "",
            **destination_plan.values,
        )
    if destination_plan.changed:
        for key in destination_plan.changed:
            value = (
                destination_plan.secret
                if key == "client_secret"
                else destination_plan.values[key]
            )
            setattr(existing, key, value)
        _save_changed(existing, destination_plan.changed)
    return existing


def _write_cohort(cohort_plan: CohortPlan, sources: dict[str, Source]) -> Cohort:
    cohort = cohort_plan.existing
    source = None
    if cohort_plan.source_name:
        source = sources.get(cohort_plan.source_name) or Source.objects.get(name=cohort_plan.source_name)
    if cohort is None:
        cohort = Cohort.objects.create(name=cohort_plan.name, source=source, **cohort_plan.values)
    else:
        cohort.source = source
        fields = [f for f in cohort_plan.changed if f in cohort_plan.values]
        if fields or "source" in cohort_plan.changed:
            for key in fields:
                setattr(cohort, key, cohort_plan.values[key])
            _save_changed(cohort, [*fields, *(["source"] if "source" in cohort_plan.changed else [])])
    for chunk in _chunks(cohort_plan.members_to_remove):
        StaticMembership.objects.filter(cohort=cohort, distinct_id__in=chunk).delete()
    StaticMembership.objects.bulk_create(
        (StaticMembership(cohort=cohort, distinct_id=d) for d in cohort_plan.members_to_add),
        batch_size=MEMBERSHIP_CHUNK,
    )
    return cohort


def _write_sync(sync_plan: SyncPlan, cohort: Cohort, destination: Destination) -> Sync:
    sync = sync_plan.existing
    if sync is None:
        return Sync.objects.create(
            name=sync_plan.name, cohort=cohort, destination=destination, **sync_plan.values
        )
    sync.cohort = cohort
    sync.destination = destination
    for key, value in sync_plan.values.items():
        setattr(sync, key, value)
    _save_changed(sync, sync_plan.changed)
    return sync


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for start in range(0, len(items), MEMBERSHIP_CHUNK):
        yield items[start : start + MEMBERSHIP_CHUNK]


def schedules_update(sync_ids: list[int], warnings: list[str]) -> None:
    from syncs.services import sync_schedule_update

    update: Callable[..., None] = sync_schedule_update
    for sync in Sync.objects.filter(pk__in=sync_ids).select_related("destination"):
        try:
            update(sync=sync)
        except Exception as exc:
            # The configuration is committed; a scheduling hiccup must not hide that.
            logger.exception("apply: updating the schedule of sync %s failed", sync.pk)
            warnings.append(
                f'sync "{sync.name}" was saved but its schedule could not be updated '
                f"({type(exc).__name__}). Disable and enable it again in the admin, or run "
                "`manage.py setup_schedules`."
            )
