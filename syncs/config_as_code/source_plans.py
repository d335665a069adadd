"""`apply` for sources and profile imports: validate entries into plans, then write them.

Sources: {"name", "url", "password"?, "kind"?, "options"?}. The URL's password (inside the
URL or as "password", each possibly {"env": "VAR"}) is encrypted at rest and never shown.
Profile imports: {"name", "source", "sql", "every_minutes"?, "incremental_column"?,
"delete_missing"?, "enabled"?}.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.db import models

from destinations.encryption import SecretDecryptionError
from sources.connections import SourceUrlError, source_url_parse
from sources.models import ProfileImport, Source, SourceKind
from sources.services import HIGH_WATER_FIELDS
from sources.validation import (
    SettingError,
    every_minutes_clean,
    incremental_column_clean,
    source_options_clean,
    sql_clean,
)
from syncs.config_as_code.checks import (
    EntryErrors,
    entry_name,
    json_type,
    resolve_secret,
    unknown_keys,
)

PlanT = TypeVar("PlanT")
SOURCE_KEYS = ("name", "kind", "url", "password", "options")
IMPORT_KEYS = ("name", "source", "sql", "every_minutes", "incremental_column", "delete_missing", "enabled")


@dataclass
class SourcePlan:
    name: str
    existing: Source | None
    values: dict[str, Any]
    password: str | None  # None keeps the stored password
    changed: list[str] = field(default_factory=list)


@dataclass
class ProfileImportPlan:
    name: str
    existing: ProfileImport | None
    source_name: str
    values: dict[str, Any]
    changed: list[str] = field(default_factory=list)


# --- Sources ---------------------------------------------------------------------------------


def _entries_plan(
    entries: list[Any], sink: list[str], section: str, model: type[models.Model],
    plan_one: Callable[[dict[str, Any], str, EntryErrors], PlanT | None],
) -> list[PlanT]:
    """Each valid entry's plan; every problem goes to `sink`, naming the entry."""
    plans: list[PlanT] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        errors = EntryErrors(sink, section, index)
        name = entry_name(entry, errors, model, seen)
        if name is None:
            continue
        entry_plan = plan_one(entry, name, errors)
        if entry_plan is not None and not errors.count:
            plans.append(entry_plan)
    return plans


def plan_sources(entries: list[Any], environ: Mapping[str, str], sink: list[str]) -> list[SourcePlan]:
    return _entries_plan(
        entries, sink, "sources", Source, lambda entry, name, errors: _plan_source(entry, name, environ, errors)
    )


def _plan_source(entry: dict[str, Any], name: str, environ: Mapping[str, str], errors: EntryErrors) -> SourcePlan | None:
    for key in unknown_keys(entry, SOURCE_KEYS):
        errors.add(key, f"unknown key. A source takes: {', '.join(SOURCE_KEYS)}.")
    before = errors.count
    raw_url = resolve_secret(entry, "url", errors, environ)
    password = resolve_secret(entry, "password", errors, environ)
    if errors.count > before:
        return None
    if not raw_url:
        errors.add("url", 'is required: e.g. "postgres://reader@db.internal:5432/app" (the password '
                   'may be given as "password": {"env": "VARIABLE"}).')
        return None
    try:
        parsed = source_url_parse(raw_url)
    except SourceUrlError as exc:
        errors.add("url", exc.message)
        return None
    if parsed.password and password:
        errors.add("password", "is also inside the URL: give it once.")
    kind = entry.get("kind", parsed.kind)
    if kind not in SourceKind.values:
        errors.add("kind", f"must be one of {', '.join(SourceKind.values)}, not {kind!r}.")
    elif kind != parsed.kind:
        errors.add("kind", f"is {kind} but the URL is a {parsed.kind} URL; leave kind out or fix the URL.")
    try:
        options = source_options_clean(entry.get("options"))
    except SettingError as exc:
        errors.add("options", str(exc))
    if errors.count:
        return None
    existing = Source.objects.filter(name=name).defer("password").first()
    values = {"kind": parsed.kind, "url": parsed.url, "options": options}
    plan = SourcePlan(name=name, existing=existing, values=values, password=(parsed.password or password) or None)
    if existing is not None:
        plan.changed = [key for key, value in values.items() if getattr(existing, key) != value]
        if plan.password is not None and _password_differs(existing, plan.password):
            plan.changed.append("password")
    return plan


def _password_differs(existing: Source, password: str) -> bool:
    try:
        return Source.objects.get(pk=existing.pk).password != password
    except SecretDecryptionError:
        return True  # unreadable (a lost key): the document's password replaces it


def write_sources(plans: list[SourcePlan]) -> dict[str, Source]:
    written: dict[str, Source] = {}
    for plan in plans:
        source = plan.existing
        if source is None:
            source = Source.objects.create(name=plan.name, password=plan.password or "", **plan.values)
        elif plan.changed:
            for key in plan.changed:
                setattr(source, key, plan.password if key == "password" else plan.values[key])
            source.save(update_fields=[*plan.changed, "updated_at"])
        written[plan.name] = source
    return written


def source_reference_problem(name: str | None, *, document: set[str], invalid: set[str]) -> str | None:
    """Why a `source` reference (from a cohort or an import) cannot be resolved, or None."""
    if not name or name in document or name in invalid:
        return None
    if Source.objects.filter(name=name).exists():
        return None
    return f'no source named "{name}" in this document or the database.'


# --- Profile imports -------------------------------------------------------------------------


def plan_profile_imports(
    entries: list[Any], sink: list[str], *, source_names: set[str], invalid_sources: set[str]
) -> list[ProfileImportPlan]:
    return _entries_plan(
        entries, sink, "profile_imports", ProfileImport,
        lambda entry, name, errors: _plan_import(entry, name, errors, source_names, invalid_sources),
    )


def _plan_import(
    entry: dict[str, Any], name: str, errors: EntryErrors, source_names: set[str], invalid_sources: set[str]
) -> ProfileImportPlan | None:
    for key in unknown_keys(entry, IMPORT_KEYS):
        errors.add(key, f"unknown key. A profile import takes: {', '.join(IMPORT_KEYS)}.")
    values: dict[str, Any] = {}
    source_name = entry.get("source")
    if not isinstance(source_name, str) or not source_name.strip():
        errors.add("source", "is required: the name of the source the query runs on.")
        source_name = ""
    else:
        source_name = source_name.strip()
        problem = source_reference_problem(source_name, document=source_names, invalid=invalid_sources)
        if problem:
            errors.add("source", problem)
    for key, clean in (("sql", sql_clean), ("every_minutes", every_minutes_clean),
                       ("incremental_column", incremental_column_clean)):
        try:
            values[key] = clean(entry.get(key))
        except SettingError as exc:
            errors.add(key, str(exc))
    for key, default in (("delete_missing", False), ("enabled", True)):
        value = entry.get(key, default)
        if not isinstance(value, bool):
            errors.add(key, f"must be true or false, not {json_type(value)}.")
        values[key] = value
    if errors.count:
        return None
    existing = ProfileImport.objects.select_related("source").filter(name=name).first()
    plan = ProfileImportPlan(name=name, existing=existing, source_name=source_name, values=values)
    if existing is not None:
        plan.changed = [key for key, value in values.items() if getattr(existing, key) != value]
        if existing.source.name != source_name:
            plan.changed.append("source")
    return plan


def write_profile_imports(plans: list[ProfileImportPlan], sources: dict[str, Source]) -> list[int]:
    """Write the imports; returns the ids of those whose schedule may have changed."""
    changed_ids: list[int] = []
    for plan in plans:
        if plan.existing is not None and not plan.changed:
            continue
        source = sources.get(plan.source_name) or Source.objects.get(name=plan.source_name)
        profile_import = plan.existing or ProfileImport(name=plan.name)
        for key, value in plan.values.items():
            setattr(profile_import, key, value)
        profile_import.source = source
        if plan.existing is not None and HIGH_WATER_FIELDS & set(plan.changed):
            # The mark belonged to the old query, column or source: read everything next.
            profile_import.high_water_mark = None
        profile_import.save()
        changed_ids.append(profile_import.pk)
    return changed_ids


def import_schedules_update(import_ids: list[int], warnings: list[str]) -> None:
    from sources.schedules import import_schedule_update

    for profile_import in ProfileImport.objects.filter(pk__in=import_ids):
        try:
            import_schedule_update(profile_import=profile_import)
        except Exception as exc:  # the configuration is committed; say so, do not hide it
            warnings.append(
                f'profile import "{profile_import.name}" was saved but its schedule could not be '
                f"updated ({type(exc).__name__}). Run `manage.py setup_schedules`."
            )
