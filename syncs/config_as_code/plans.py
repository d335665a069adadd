"""Validate destination and cohort entries into plans: what to write, and what changed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cohorts.models import Cohort, StaticMembership
from cohorts.rules import rules_problems
from destinations.encryption import SecretDecryptionError
from destinations.kinds import all_setting_names, kind_names, kind_spec
from destinations.kindspec import KindSpec, SettingField, UnknownKindError
from destinations.models import Destination
from destinations.validation import SettingError, setting_clean, validate_destination_options
from sources.validation import SettingError as SourceSettingError
from sources.validation import sql_clean
from syncs.config_as_code.checks import (
    COHORT_KEYS,
    DESTINATION_COMMON,
    EntryErrors,
    entry_name,
    json_type,
    max_length_of,
    resolve_secret,
    text_value,
    unknown_keys,
)
from syncs.config_as_code.source_plans import (
    ProfileImportPlan,
    SourcePlan,
    source_reference_problem,
)
from syncs.models import Sync

# --- Plans -------------------------------------------------------------------------------------


@dataclass
class DestinationPlan:
    name: str
    existing: Destination | None
    values: dict[str, Any]
    secret: str | None  # None keeps the stored secret
    changed: list[str] = field(default_factory=list)


@dataclass
class CohortPlan:
    name: str
    existing: Cohort | None
    values: dict[str, Any]
    members: list[str] | None  # None: a rules or SQL cohort
    source_name: str | None = None  # SQL cohorts: the source its query runs on
    members_to_add: list[str] = field(default_factory=list)
    members_to_remove: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


@dataclass
class SyncPlan:
    name: str
    existing: Sync | None
    cohort_name: str
    destination_name: str
    values: dict[str, Any]
    changed: list[str] = field(default_factory=list)


@dataclass
class Plan:
    sources: list[SourcePlan] = field(default_factory=list)
    profile_imports: list[ProfileImportPlan] = field(default_factory=list)
    destinations: list[DestinationPlan] = field(default_factory=list)
    cohorts: list[CohortPlan] = field(default_factory=list)
    syncs: list[SyncPlan] = field(default_factory=list)
    alerts: list[Any] = field(default_factory=list)  # alerts.config_as_code.AlertPlan
    # Filled by writing: the imports whose schedule may have changed.
    written_import_ids: list[int] = field(default_factory=list)




# --- Destinations --------------------------------------------------------------------------


def plan_destinations(
    entries: list[Any], environ: Mapping[str, str], plan: Plan, sink: list[str]
) -> None:
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        errors = EntryErrors(sink, "destinations", index)
        name = entry_name(entry, errors, Destination, seen)
        if name is None:
            continue
        destination_plan = _plan_destination(entry, name, environ, errors)
        if destination_plan is not None and not errors.count:
            plan.destinations.append(destination_plan)


def _plan_destination(
    entry: dict[str, Any], name: str, environ: Mapping[str, str], errors: EntryErrors
) -> DestinationPlan | None:
    kind = entry.get("kind")
    try:
        spec = kind_spec(kind)
    except UnknownKindError:
        shown = "missing" if kind is None else f"{kind!r}"
        errors.add("kind", f"must be one of {', '.join(kind_names())} ({shown}).")
        return None
    takes = (*DESTINATION_COMMON, *spec.setting_names)
    for key in unknown_keys(entry, takes):
        if key in all_setting_names():
            errors.add(key, f"does not apply to {spec.short_label} destinations; remove it.")
        else:
            errors.add(key, f"unknown key. {spec.short_label} destinations take: {', '.join(takes)}.")

    existing = Destination.objects.filter(name=name).defer("client_secret").first()
    values: dict[str, Any] = {"kind": kind}
    before = errors.count
    client_id = resolve_secret(entry, "client_id", errors, environ)
    limit = max_length_of(Destination, "client_id") or 0
    if errors.count > before:
        pass
    elif not client_id:
        errors.add("client_id", "is required: the client id of the API integration.")
    elif len(client_id) > limit:
        errors.add("client_id", f"must be at most {limit} characters.")
    else:
        values["client_id"] = client_id
    before = errors.count
    secret = resolve_secret(entry, "client_secret", errors, environ) or None
    if errors.count == before and secret is None and existing is None:
        errors.add(
            "client_secret",
            'is required when creating a destination; use {"env": "VARIABLE_NAME"} to keep '
            "it out of the file.",
        )

    for setting_name in all_setting_names():
        values[setting_name] = ""
    for setting in spec.settings:
        cleaned = _setting_value(entry, setting, spec, errors)
        if cleaned is not None:
            values[setting.name] = cleaned
    try:
        values["options"] = validate_destination_options(kind, entry.get("options"))
    except SettingError as exc:
        errors.add("options", str(exc))

    if existing is not None and existing.kind != kind and existing.syncs.exists():
        errors.add(
            "kind",
            f"cannot change from {existing.kind} to {kind}: syncs already write to this "
            "destination and what they synced lives in the old kind. Create a new destination "
            "(another name) instead.",
        )
    if errors.count:
        return None

    destination_plan = DestinationPlan(name=name, existing=existing, values=values, secret=secret)
    if existing is not None:
        destination_plan.changed = [
            key for key, value in values.items() if getattr(existing, key) != value
        ]
        if secret is not None and _secret_differs(existing, secret):
            destination_plan.changed.append("client_secret")
    return destination_plan


def _setting_value(entry: dict[str, Any], setting: SettingField, spec: KindSpec, errors: EntryErrors) -> str | None:
    """The value to store for one kind setting, or None after recording an error."""
    value = entry.get(setting.name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a MID is a number; JSON authors write it as one
    cleaned = text_value(
        {setting.name: value},
        setting.name,
        errors,
        max_length=None,
        required=setting.required,
        required_message=f"is required for {spec.short_label} destinations.",
    )
    if cleaned is None:
        return None
    try:
        cleaned = setting_clean(setting, cleaned)
    except SettingError as exc:
        errors.add(setting.name, str(exc))
        return None
    limit = max_length_of(Destination, setting.name)
    if limit is not None and len(cleaned) > limit:
        errors.add(setting.name, f"must be at most {limit} characters (it has {len(cleaned)}).")
        return None
    return cleaned


def _secret_differs(existing: Destination, secret: str) -> bool:
    try:
        return existing.client_secret != secret
    except SecretDecryptionError:
        # The stored one is unreadable (lost key): the document's secret replaces it.
        return True


# --- Cohorts -----------------------------------------------------------------------------


def plan_cohorts(
    entries: list[Any], plan: Plan, sink: list[str], *, invalid_sources: frozenset[str] = frozenset()
) -> None:
    seen: dict[str, int] = {}
    source_names = {p.name for p in plan.sources}
    for index, entry in enumerate(entries):
        errors = EntryErrors(sink, "cohorts", index)
        name = entry_name(entry, errors, Cohort, seen)
        if name is None:
            continue
        cohort_plan = _plan_cohort(entry, name, errors, source_names, invalid_sources)
        if cohort_plan is not None and not errors.count:
            plan.cohorts.append(cohort_plan)


def _plan_cohort(
    entry: dict[str, Any], name: str, errors: EntryErrors, source_names: set[str], invalid_sources: frozenset[str]
) -> CohortPlan | None:
    for key in unknown_keys(entry, COHORT_KEYS):
        errors.add(key, f"unknown key. A cohort takes: {', '.join(COHORT_KEYS)}.")
    description = text_value(entry, "description", errors, max_length=None)
    has_rules = entry.get("rules") is not None
    has_members = entry.get("members") is not None
    has_sql = entry.get("sql") is not None
    if has_rules + has_members + has_sql != 1:
        errors.add(
            "rules",
            'give exactly one of "rules" (a rule group such as {"all": [...]}), "members" '
            '(a list of distinct ids for a static list) or "sql" with "source" (a query '
            "returning distinct ids).",
        )
        return None
    members: list[str] | None = None
    sql, source_name = "", None
    if has_rules:
        for problem in rules_problems(entry["rules"]):
            errors.add("rules", problem)
    elif has_members:
        members = _clean_members(entry["members"], errors)
    else:
        sql, source_name = _clean_sql_cohort(entry, errors, source_names, invalid_sources)
    if entry.get("source") is not None and not has_sql:
        errors.add("source", 'applies to SQL cohorts only (with "sql"); remove it.')
    if errors.count:
        return None

    kind = Cohort.Kind.RULES if has_rules else Cohort.Kind.STATIC if has_members else Cohort.Kind.SQL
    values = {
        "description": description or "",
        "kind": kind,
        "rules": entry["rules"] if has_rules else None,
        "sql": sql,
    }
    existing = Cohort.objects.select_related("source").filter(name=name).first()
    cohort_plan = CohortPlan(name=name, existing=existing, values=values, members=members, source_name=source_name)
    current: set[str] = set()
    if existing is not None:
        cohort_plan.changed = [k for k, v in values.items() if getattr(existing, k) != v]
        if (existing.source.name if existing.source else None) != source_name:
            cohort_plan.changed.append("source")
        # An SQL cohort's list is what its query returned: apply leaves it to the refresh.
        if kind != Cohort.Kind.SQL:
            current = set(existing.static_memberships.values_list("distinct_id", flat=True))
    wanted = set(members or ())
    cohort_plan.members_to_add = sorted(wanted - current)
    cohort_plan.members_to_remove = sorted(current - wanted)
    if cohort_plan.members_to_add or cohort_plan.members_to_remove:
        cohort_plan.changed.append(
            f"members +{len(cohort_plan.members_to_add)} -{len(cohort_plan.members_to_remove)}"
        )
    return cohort_plan


def _clean_sql_cohort(
    entry: dict[str, Any], errors: EntryErrors, source_names: set[str], invalid_sources: frozenset[str]
) -> tuple[str, str | None]:
    sql = ""
    try:
        sql = sql_clean(entry["sql"])
    except SourceSettingError as exc:
        errors.add("sql", str(exc))
    source_name = entry.get("source")
    if not isinstance(source_name, str) or not source_name.strip():
        errors.add("source", 'is required with "sql": the name of the source the query runs on.')
        return sql, None
    source_name = source_name.strip()
    problem = source_reference_problem(source_name, document=source_names, invalid=set(invalid_sources))
    if problem:
        errors.add("source", problem)
    return sql, source_name


def _clean_members(value: Any, errors: EntryErrors) -> list[str] | None:
    if not isinstance(value, list):
        errors.add("members", f"must be a list of distinct ids, not {json_type(value)}.")
        return None
    limit = max_length_of(StaticMembership, "distinct_id") or 255
    cleaned: dict[str, None] = {}
    for position, item in enumerate(value):
        if not isinstance(item, str | int) or isinstance(item, bool):
            errors.add(f"members[{position}]", f"must be a distinct id (text), not {json_type(item)}.")
            return None
        text = str(item).strip()
        if not text or len(text) > limit:
            errors.add(
                f"members[{position}]", f"must be a non-empty distinct id of at most {limit} characters."
            )
            return None
        cleaned[text] = None  # duplicates are harmless: keep the first
    return list(cleaned)
