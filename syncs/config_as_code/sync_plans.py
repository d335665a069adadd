"""Validate sync entries into plans: references, frozen fields, one field per destination
account, and (for kinds that ask for it) a target that exists in the destination."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cohorts.models import Cohort
from destinations.accounts import (
    KindSettings,
    destination_field_scope,
    destination_field_scope_label,
)
from destinations.base import Connector, DestinationConfig, SyncTarget
from destinations.encryption import SecretDecryptionError
from destinations.errors import DestinationError, TargetValidationError
from destinations.kinds import all_setting_names, kind_spec, kind_specs
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
    _check_unique_fields(plan.syncs, plan, sink, positions=seen,
                         destination_positions=_positions(sections["destinations"]))
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
        self._settings: dict[str, KindSettings] = {}
        for destination in Destination.objects.defer("client_secret"):
            try:
                self._settings[destination.name] = KindSettings.of(destination)
            except UnknownKindError:
                continue  # a kind this version does not know holds no field it could clash on
        for destination_plan in plan.destinations:
            self._settings[destination_plan.name] = KindSettings.from_values(destination_plan.values)

    def scope(self, name: str) -> str | None:
        settings = self._settings.get(name)
        return destination_field_scope(settings) if settings is not None else None

    def label(self, name: str) -> str:
        return destination_field_scope_label(self._settings[name])


# Changing these points a destination elsewhere.
_SETTINGS = frozenset({"kind", *all_setting_names()})


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
