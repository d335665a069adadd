"""Validate sync entries into plans: references, frozen fields, one field per destination
account."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cohorts.models import Cohort
from destinations.accounts import (
    DestinationSettings,
    destination_field_scope,
    destination_field_scope_label,
)
from destinations.base import DestinationConfig
from destinations.models import Destination
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
from syncs.config_as_code.plans import Plan, SyncPlan
from syncs.models import DISTINCT_ID_IDENTITY, Sync
from syncs.options import sync_option_problems
from syncs.selectors import sync_is_frozen


def plan_syncs(
    entries: list[Any], sections: dict[str, list[Any]], plan: Plan, sink: list[str]
) -> None:
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
    _check_unique_fields(plan.syncs, plan, sink, positions=seen,
                         destination_positions=_positions(sections["destinations"]))


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
        required_message="is required: the data extension column, contact attribute or "
        "Marketo field that holds the membership.",
    )
    identity = text_value(
        entry, "identity_property", errors, max_length=max_length_of(Sync, "identity_property"),
        default="$email", required=True,
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

    kind = _resolve_destination_kind(destination_name, references, errors)
    if (
        cohort_name
        and cohort_name not in references.cohorts
        and cohort_name not in references.invalid["cohorts"]
        and not Cohort.objects.filter(name=cohort_name).exists()
    ):
        errors.add("cohort", f'no cohort named "{cohort_name}" in this document or the database.')
    options = _clean_sync_options(
        entry.get("options"), kind, mode if mode in Sync.Mode.values else None, errors
    )
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
    existing = Sync.objects.select_related("cohort", "destination").filter(name=name).first()
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


def _clean_sync_options(
    value: Any, kind: str | None, mode: str | None, errors: EntryErrors
) -> dict[str, Any]:
    problems = sync_option_problems(value, kind=kind, mode=mode)
    for key, message in problems:
        errors.add(f"options.{key}" if key else "options", message)
    return dict(value) if isinstance(value, dict) and not problems else {}


def _check_unique_fields(
    sync_plans: list[SyncPlan], plan: Plan, sink: list[str], *, positions: dict[str, int],
    destination_positions: dict[str, int],
) -> None:
    """One field per destination account (destination records pointing at the same data
    extension, attribute set or Marketo instance share their fields), checked on the state
    after applying, with the sync names."""
    scopes = _DestinationScopes(plan)
    moved = {p.name for p in plan.destinations if p.existing is not None and set(p.changed) & _SETTINGS}
    document_names = {p.name for p in sync_plans}
    owners: dict[tuple[str, str], tuple[str, str]] = {}
    for name, destination, target_field in Sync.objects.exclude(name__in=document_names).values_list(
        "name", "destination__name", "target_field"
    ).order_by("pk"):
        scope = scopes.scope(destination)
        if scope is None:
            continue
        key = (scope, target_field.strip().lower())
        owner = owners.setdefault(key, (name, destination))
        if owner[1] == destination or not {owner[1], destination} & moved:
            continue  # the same record, or a clash this document does not make
        # A destination entry points its syncs at an account whose field is taken.
        (mine, mover), (theirs, other) = sorted([(name, destination), owner], key=lambda s: s[1] not in moved)
        errors = EntryErrors(sink, "destinations", destination_positions[mover])
        errors.name = mover
        errors.add(
            "settings",
            f'would make it write to {scopes.label(mover)}, where sync "{theirs}" (destination '
            f'"{other}") already writes the field "{target_field}" that its sync "{mine}" writes. '
            "Change the field of one of them first.",
        )
    for sync_plan in sync_plans:
        field = sync_plan.values["target_field"]
        scope = scopes.scope(sync_plan.destination_name)
        if scope is None:
            continue
        key = (scope, field.strip().lower())
        owner = owners.get(key)
        if owner is None:
            owners[key] = (sync_plan.name, sync_plan.destination_name)
            continue
        owner_name, owner_destination = owner
        errors = EntryErrors(sink, "syncs", positions[sync_plan.name])
        errors.name = sync_plan.name
        if owner_destination == sync_plan.destination_name:
            where = f'"{field}" on destination "{owner_destination}" is already used by sync "{owner_name}".'
        else:
            where = (
                f'"{field}" is already used by sync "{owner_name}" through destination '
                f'"{owner_destination}", which writes to the same place as "{sync_plan.destination_name}": '
                f"{scopes.label(sync_plan.destination_name)}."
            )
        errors.add("field", f"{where} A field holds the membership of one cohort only: use another field.")


def _positions(entries: list[Any]) -> dict[str, int]:
    return {
        entry["name"].strip(): index
        for index, entry in enumerate(entries)
        if isinstance(entry, dict) and isinstance(entry.get("name"), str)
    }


class _DestinationScopes:
    """Field scopes of destinations by name, as they will be once the plan is written."""

    def __init__(self, plan: Plan) -> None:
        self._settings: dict[str, DestinationSettings] = {
            destination.name: destination for destination in Destination.objects.defer("client_secret")
        }
        for destination_plan in plan.destinations:
            values = {key: value for key, value in destination_plan.values.items() if key in _SETTINGS}
            self._settings[destination_plan.name] = DestinationConfig(
                name=destination_plan.name, client_id="", client_secret="", **values
            )

    def scope(self, name: str) -> str | None:
        settings = self._settings.get(name)
        return destination_field_scope(settings) if settings is not None else None

    def label(self, name: str) -> str:
        return destination_field_scope_label(self._settings[name])


_SETTINGS = frozenset(
    {"kind", "subdomain", "account_id", "auth_base_url", "data_extension_key", "attribute_set", "base_url"}
)
