"""Shared vocabulary of the document format and helpers that validate one value."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import models

from cohortsync_site.json_values import (
    JSONValueError,
    json_text_problem,
    json_value_check,
    shown_text,
)

SECTIONS = ("sources", "profile_imports", "destinations", "cohorts", "syncs", "alerts")
# A month: a longer interval is almost certainly a unit mistake (hours or seconds).
MAX_INTERVAL_MINUTES = 43_200
MEMBERSHIP_CHUNK = 500

# What every destination entry takes; the settings of its kind come from the kind's spec
# (destinations.kinds). Anything else is an error, so a typo never silently does nothing.
DESTINATION_COMMON = ("name", "kind", "client_id", "client_secret", "options")
COHORT_KEYS = ("name", "description", "rules", "members", "source", "sql")
SYNC_KEYS = (
    "name",
    "cohort",
    "destination",
    "field",
    "identity_property",
    "mode",
    "interval_minutes",
    "enabled",
    "options",
)


# --- Validation helpers ----------------------------------------------------------------------


class EntryErrors:
    """Collects errors for one entry, prefixed with its position and name."""

    def __init__(self, sink: list[str], section: str, index: int) -> None:
        self.sink = sink
        self.section = section
        self.index = index
        self.name: str | None = None
        self.count = 0

    def add(self, key: str, message: str) -> None:
        label = f"{self.section}[{self.index}]"
        if self.name:
            label += f' "{self.name}"'
        self.sink.append(f"{label}: {key}: {message}")
        self.count += 1


def text_value(
    entry: Mapping[str, Any],
    key: str,
    errors: EntryErrors,
    *,
    max_length: int | None,
    required: bool = False,
    required_message: str | None = None,
    default: str = "",
) -> str | None:
    """A stripped text value, `default` when absent, or None after recording an error."""
    value = entry.get(key)
    if value is None:
        value = default
    if not isinstance(value, str):
        errors.add(key, f"must be text, not {json_type(value)}.")
        return None
    value = value.strip()
    if required and not value:
        errors.add(key, required_message or "is required.")
        return None
    if max_length is not None and len(value) > max_length:
        errors.add(key, f"must be at most {max_length} characters (it has {len(value)}).")
        return None
    return value


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return "text"


def max_length_of(model: type[models.Model], name: str) -> int | None:
    return model._meta.get_field(name).max_length


def resolve_secret(
    entry: Mapping[str, Any], key: str, errors: EntryErrors, environ: Mapping[str, str]
) -> str | None:
    """A literal string or {"env": "VAR"}; None when absent or after recording an error."""
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, dict):
        variable = value.get("env")
        if set(value) != {"env"} or not isinstance(variable, str) or not variable.strip():
            errors.add(key, 'must be text or {"env": "VARIABLE_NAME"}.')
            return None
        variable = variable.strip()
        resolved = environ.get(variable)
        if resolved is None or not resolved.strip():
            errors.add(
                key,
                f"environment variable {variable} is not set (or empty). Set it before "
                "running apply.",
            )
            return None
        return resolved.strip()
    if not isinstance(value, str):
        errors.add(key, f'must be text or {{"env": "VARIABLE_NAME"}}, not {json_type(value)}.')
        return None
    return value.strip()


def unknown_keys(entry: Mapping[str, Any], allowed: Iterable[str]) -> list[str]:
    allowed_set = set(allowed)
    return [key for key in entry if key not in allowed_set]


class RefusedEntry(dict):
    """Stands in for an entry holding a value no database can store (its errors are already
    reported). Planners skip it through `entry_name`; it keeps the entry's name, if that is
    fine, so a sync naming it gets no second, misleading "not found" error."""


def sections_values_check(sections: dict[str, list[Any]], sink: list[str]) -> None:
    """Report every field holding a value no database can store, naming entry and field,
    and replace those entries with RefusedEntry."""
    for section, entries in sections.items():
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                continue
            errors = EntryErrors(sink, section, index)
            name = entry.get("name")
            if isinstance(name, str) and json_text_problem(name) is None:
                errors.name = name.strip()
            for key, value in entry.items():
                problem = json_text_problem(key) if isinstance(key, str) else "is not text"
                if problem:
                    errors.add(shown_text(str(key)), f"the key {problem}.")
                    continue
                try:
                    json_value_check(value)
                except JSONValueError as exc:
                    errors.add(key, f"{exc}.")
            if errors.count:
                entries[index] = RefusedEntry({"name": errors.name} if errors.name else {})


def entry_name(
    entry: Any, errors: EntryErrors, model: type[models.Model], seen: dict[str, int]
) -> str | None:
    if isinstance(entry, RefusedEntry):
        return None
    if not isinstance(entry, dict):
        errors.add("entry", f"must be an object, not {json_type(entry)}.")
        return None
    name = text_value(entry, "name", errors, max_length=max_length_of(model, "name"), required=True)
    if name is None:
        return None
    errors.name = name
    if name in seen:
        errors.add("name", f"is used twice in {errors.section} (also at [{seen[name]}]).")
        return None
    seen[name] = errors.index
    return name
