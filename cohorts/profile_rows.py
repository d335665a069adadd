"""One profile row, checked and normalised: the gate every producer of profiles goes through.

File imports (CSV, JSON Lines) call `profile_row_normalize` for each row; so should any
other source of profiles (a SQL query, an HTTP ingestion endpoint). A row it accepts can be
written on PostgreSQL and SQLite alike; a row it refuses raises ProfileRowError with a
sentence saying what is wrong, which the caller records against the row's line or position
and then carries on with the next row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cohorts.models import Profile
from cohortsync_site.json_values import (
    MAX_DEPTH,
    JSONValueError,
    json_text_problem,
    json_value_check,
)

MAX_DISTINCT_ID_LENGTH = Profile._meta.get_field("distinct_id").max_length or 255


class ProfileRowError(ValueError):
    """The row cannot be imported; str() is the reason, without the line number."""


@dataclass(slots=True)
class ProfileRow:
    """A row ready to write: properties to merge into the stored ones, keys to remove."""

    line: int
    distinct_id: str
    properties: dict[str, Any]
    removals: set[str]


def profile_row_normalize(*, distinct_id: Any, properties: Any, line: int) -> ProfileRow:
    """Check one row from any source and return it ready to write, or raise ProfileRowError.

    `distinct_id` is text (surrounding spaces are dropped) or a whole number. `properties`
    is a JSON object; a property set to None is removed from the stored profile. Values must
    be storable JSON (cohortsync_site.json_values): no NaN or Infinity, no integer beyond 64
    bits, no NUL or lone surrogate in text or keys, at most MAX_DEPTH levels deep counting
    the properties object itself.
    """
    # This runs for every row of every import: the common case takes the fewest steps.
    if type(distinct_id) is not str:
        if isinstance(distinct_id, int) and not isinstance(distinct_id, bool):
            distinct_id = str(distinct_id)
        elif not isinstance(distinct_id, str):
            raise ProfileRowError("distinct_id is missing or is not text")
    distinct_id = distinct_id.strip()
    if not (
        distinct_id
        and len(distinct_id) <= MAX_DISTINCT_ID_LENGTH
        and distinct_id.isascii()
        and "\x00" not in distinct_id
    ):
        problem = distinct_id_problem(distinct_id)
        if problem:
            raise ProfileRowError(problem)
    if type(properties) is not dict:
        if not isinstance(properties, dict):
            raise ProfileRowError('"properties" must be a JSON object')
        properties = dict(properties)
    try:
        json_value_check(properties, max_depth=MAX_DEPTH)
    except JSONValueError as exc:
        where = f"property {exc.path}" if exc.path else "properties"
        raise ProfileRowError(f"{where}: {exc.problem}") from None
    removals: set[str] = set()
    if None in properties.values():
        removals = {key for key, value in properties.items() if value is None}
        properties = {key: value for key, value in properties.items() if value is not None}
    else:
        properties = properties.copy()  # the row owns its dict: batches merge into it
    return ProfileRow(line, distinct_id, properties, removals)


def distinct_id_problem(distinct_id: str, *, label: str = "distinct_id") -> str | None:
    """Why this (stripped) distinct id cannot be stored, or None."""
    if not distinct_id:
        return f"{label} is empty"
    if len(distinct_id) > MAX_DISTINCT_ID_LENGTH:
        return f"{label} is longer than {MAX_DISTINCT_ID_LENGTH} characters"
    problem = json_text_problem(distinct_id)
    if problem:
        return f"{label} {problem}"
    return None
