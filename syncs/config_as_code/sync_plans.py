"""Validate sync entries into plans: references, frozen fields, one field per destination,
and (for kinds that ask for it) a target that exists in the destination."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cohorts.models import Cohort
from destinations.base import Connector, DestinationConfig, SyncTarget
from destinations.encryption import SecretDecryptionError
from destinations.errors import DestinationError, TargetValidationError
from destinations.kinds import kind_spec, kind_specs
from destinations.kindspec import UnknownKindError
from destinations.models import Destination
from destinations.registry import connector_build, connector_for
from syncs.config_as_code.checks import (
    MAX_INTERVAL_MINUTES,
    SYNC_KEYS,
    EntryErrors,
    entry_name,
    json_type,
    max_length_of,
    text_value,
    unknown_keys,
)
from syncs.config_as_code.plans import DestinationPlan, Plan, SyncPlan
from syncs.models import DISTINCT_ID_IDENTITY, Sync
from syncs.options import sync_option_problems
from syncs.selectors import sync_is_frozen


def plan_syncs(
    entries: list[Any], sections: dict[str, list[Any]], plan: Plan, sink: list[str], *, check_targets: bool = True
) -> None:
    """`check_targets`: ask the destination whether the targets of new or re-targeted syncs
    exist, for kinds whose spec says so (seed_demo applies before the sandbox runs)."""
    seen: dict[str, int] = {}
    references = _References(
        destination_kinds={p.name: p.values["kind"] for p in plan.destinations},
        cohorts={p.name for p in plan.cohorts},
        # Named in the document but invalid: their own errors say why; "not found" would not.
        invalid={
            section: _entry_names(sections[section]) for section in ("destinations", "cohorts")
        },
    )
    for index, entry in enumerate(entries):
        errors = EntryErrors(sink, "syncs", index)
        name = entry_name(entry, errors, Sync, seen)
        if name is None:
            continue
        sync_plan = _plan_sync(entry, name, errors, references)
        if sync_plan is not None and not errors.count:
            plan.syncs.append(sync_plan)
    _check_unique_fields(plan.syncs, sink, positions=seen)
    if check_targets and not sink:
        _check_targets(plan, sink, positions=seen)


@dataclass
class _References:
    destination_kinds: dict[str, str]
    cohorts: set[str]
    invalid: dict[str, set[str]]


def _entry_names(entries: list[Any]) -> set[str]:
    return {
        entry["name"].strip()
        for entry in entries
        if isinstance(entry, dict) and isinstance(entry.get("name"), str)
    }


def _plan_sync(
    entry: dict[str, Any], name: str, errors: EntryErrors, references: _References
) -> SyncPlan | None:
    for key in unknown_keys(entry, SYNC_KEYS):
        errors.add(key, f"unknown key. A sync takes: {', '.join(SYNC_KEYS)}.")
    cohort_name = text_value(entry, "cohort", errors, max_length=None, required=True,
                        required_message="is required: the name of the cohort to sync.")
    destination_name = text_value(entry, "destination", errors, max_length=None, required=True,
                             required_message="is required: the name of the destination.")
    target_field = text_value(
        entry, "field", errors, max_length=max_length_of(Sync, "target_field"), required=True,
        required_message="is required: where the destination holds the membership. "
        + " ".join(spec.target_help for spec in kind_specs()),
    )
    existing = Sync.objects.select_related("cohort", "destination").filter(name=name).first()
    kind = _resolve_destination_kind(destination_name, references, errors)
    identity = text_value(
        entry, "identity_property", errors, max_length=max_length_of(Sync, "identity_property"),
        default=_default_identity(existing, kind), required=True,
        required_message=f'must name a profile property such as "$email", or "{DISTINCT_ID_IDENTITY}".',
    )
    mode = entry.get("mode", Sync.Mode.DYNAMIC)
    if mode not in Sync.Mode.values:
        errors.add("mode", f"must be one of {', '.join(Sync.Mode.values)}, not {mode!r}.")
    interval = entry.get("interval_minutes")
    if interval is not None:
        if (
            isinstance(interval, bool)
            or not isinstance(interval, int)
            or not 1 <= interval <= MAX_INTERVAL_MINUTES
        ):
            errors.add(
                "interval_minutes",
                f"must be a whole number of minutes from 1 to {MAX_INTERVAL_MINUTES}, or omitted "
                f"for the destination's default; got {interval!r}.",
            )
        elif mode == Sync.Mode.ONE_TIME:
            errors.add("interval_minutes", "applies to dynamic syncs only; remove it or use "
                       '"mode": "dynamic".')
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        errors.add("enabled", f"must be true or false, not {json_type(enabled)}.")

    if (
        cohort_name
        and cohort_name not in references.cohorts
        and cohort_name not in references.invalid["cohorts"]
        and not Cohort.objects.filter(name=cohort_name).exists()
    ):
        errors.add("cohort", f'no cohort named "{cohort_name}" in this document or the database.')
    options = _clean_sync_options(entry.get("options"), kind, errors)
    if errors.count:
        return None

    values = {
        "target_field": target_field,
        "identity_property": identity,
        "mode": mode,
        "interval_minutes": interval,
        "enabled": enabled,
        "options": options,
    }
    sync_plan = SyncPlan(
        name=name,
        existing=existing,
        cohort_name=cohort_name or "",
        destination_name=destination_name or "",
        values=values,
    )
    if existing is None:
        return sync_plan
    changed = [key for key, value in values.items() if getattr(existing, key) != value]
    if existing.cohort.name != cohort_name:
        changed.append("cohort")
    if existing.destination.name != destination_name:
        changed.append("destination")
    frozen = {"target_field", "identity_property", "destination"} & set(changed)
    if frozen and sync_is_frozen(existing):
        _frozen_errors(existing, frozen, errors)
        return None
    sync_plan.changed = changed
    return sync_plan


def _default_identity(existing: Sync | None, kind: str | None) -> str:
    """An omitted identity_property: the sync's current one, else the kind's default for new
    syncs (kept as it is, an omitted value never re-targets a sync)."""
    if existing is not None:
        return existing.identity_property
    try:
        return kind_spec(kind).default_identity
    except UnknownKindError:
        # No destination to take it from (its own error says why): the model's default.
        return str(Sync._meta.get_field("identity_property").default)


def _resolve_destination_kind(
    destination_name: str | None, references: _References, errors: EntryErrors
) -> str | None:
    if not destination_name:
        return None
    if destination_name in references.destination_kinds:
        return references.destination_kinds[destination_name]
    if destination_name in references.invalid["destinations"]:
        return None
    kind = Destination.objects.filter(name=destination_name).values_list("kind", flat=True).first()
    if kind is None:
        errors.add(
            "destination",
            f'no destination named "{destination_name}" in this document or the database.',
        )
        return None
    try:
        kind_spec(kind)
    except UnknownKindError as exc:
        errors.add("destination", f'"{destination_name}" cannot be used: {exc}')
        return None
    return kind


def _frozen_errors(existing: Sync, frozen: set[str], errors: EntryErrors) -> None:
    why = (
        "this sync has already written users to the destination, and changing it would "
        "orphan them (the old values would stay true forever). Create a new sync with "
        "another name for the new setting, and disable this one."
    )
    if "target_field" in frozen:
        errors.add("field", f'cannot change from "{existing.target_field}": {why}')
    if "identity_property" in frozen:
        errors.add(
            "identity_property", f'cannot change from "{existing.identity_property}": {why}'
        )
    if "destination" in frozen:
        errors.add("destination", f'cannot change from "{existing.destination.name}": {why}')


def _clean_sync_options(value: Any, kind: str | None, errors: EntryErrors) -> dict[str, Any]:
    problems = sync_option_problems(value, kind=kind)
    for key, message in problems:
        errors.add(f"options.{key}" if key else "options", message)
    return dict(value) if isinstance(value, dict) and not problems else {}


def _check_unique_fields(
    sync_plans: list[SyncPlan], sink: list[str], *, positions: dict[str, int]
) -> None:
    """One field per destination, checked on the state after applying, with the sync names."""
    document_names = {p.name for p in sync_plans}
    owners: dict[tuple[str, str], str] = {
        (destination, target_field): name
        for name, destination, target_field in Sync.objects.exclude(
            name__in=document_names
        ).values_list("name", "destination__name", "target_field")
    }
    for sync_plan in sync_plans:
        key = (sync_plan.destination_name, sync_plan.values["target_field"])
        owner = owners.get(key)
        if owner is None:
            owners[key] = sync_plan.name
            continue
        errors = EntryErrors(sink, "syncs", positions[sync_plan.name])
        errors.name = sync_plan.name
        errors.add(
            "field",
            f'"{key[1]}" on destination "{key[0]}" is already used by sync "{owner}". A field '
            "holds the membership of one cohort only: use another field.",
        )


def _check_targets(plan: Plan, sink: list[str], *, positions: dict[str, int]) -> None:
    """Syncs that are new or change their target, to a kind whose target must exist
    (KindSpec.target_checked_on_apply): the destination is asked, and a missing target is
    an error naming it, so nothing is written."""
    planned_destinations = {p.name: p for p in plan.destinations}
    connectors: dict[str, Connector] = {}
    for sync_plan in plan.syncs:
        if sync_plan.existing is not None and not {"target_field", "destination"} & set(sync_plan.changed):
            continue
        errors = EntryErrors(sink, "syncs", positions[sync_plan.name])
        errors.name = sync_plan.name
        try:
            connector = connectors.get(sync_plan.destination_name)
            if connector is None:
                connector = _connector(sync_plan.destination_name, planned_destinations)
                if connector is None:
                    continue
                connectors[sync_plan.destination_name] = connector
            connector.validate_target(SyncTarget(
                field=sync_plan.values["target_field"],
                identity_property=sync_plan.values["identity_property"],
                options=sync_plan.values["options"],
            ))
        except TargetValidationError as exc:
            errors.add("field", f'refused by "{sync_plan.destination_name}": {exc.message}')
        except (DestinationError, SecretDecryptionError) as exc:
            errors.add("field", f'could not be checked in "{sync_plan.destination_name}": {exc}')


def _connector(name: str, planned: dict[str, DestinationPlan]) -> Connector | None:
    """A connector for the destination as it will be after applying, when its kind checks
    targets on apply; None otherwise."""
    destination_plan = planned.get(name)
    if destination_plan is None:
        destination = Destination.objects.filter(name=name).first()
        if destination is None or not kind_spec(destination.kind).target_checked_on_apply:
            return None
        return connector_for(destination)
    values = destination_plan.values
    spec = kind_spec(values["kind"])
    if not spec.target_checked_on_apply:
        return None
    existing = destination_plan.existing
    secret = destination_plan.secret if destination_plan.secret is not None else (
        existing.client_secret if existing is not None else ""
    )
    return connector_build(DestinationConfig(
        kind=spec.kind, name=name, client_id=values.get("client_id", ""), client_secret=secret,
        settings={setting: values.get(setting, "") for setting in spec.setting_names},
        options=spec.options.of(values.get("options") or {}),
    ))
