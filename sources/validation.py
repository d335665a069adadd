"""Validation shared by the admin forms and `apply`: one rule per setting, one message."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sources.models import DEFAULT_STATEMENT_TIMEOUT_SECONDS
from sources.statements import StatementRefused, read_statement_check

MAX_STATEMENT_TIMEOUT_SECONDS = 86_400
MAX_EVERY_MINUTES = 43_200
OPTION_KEYS = ("statement_timeout_seconds", "time_zone")


class SettingError(ValueError):
    """A setting that cannot be saved; str() says why and what to write instead."""


def source_options_clean(value: Any) -> dict[str, Any]:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise SettingError('must be an object such as {"statement_timeout_seconds": 300}.')
    unknown = sorted(set(value) - set(OPTION_KEYS))
    if unknown:
        raise SettingError(f"unknown option {unknown[0]!r}; a source takes {', '.join(OPTION_KEYS)}.")
    cleaned = dict(value)
    timeout = value.get("statement_timeout_seconds")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 1 <= timeout <= MAX_STATEMENT_TIMEOUT_SECONDS
    ):
        raise SettingError(
            f"statement_timeout_seconds must be a number of seconds from 1 to "
            f"{MAX_STATEMENT_TIMEOUT_SECONDS} (default {DEFAULT_STATEMENT_TIMEOUT_SECONDS}); got {timeout!r}."
        )
    zone = value.get("time_zone")
    if zone is not None:
        try:
            if not isinstance(zone, str) or not zone:
                raise ValueError
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingError(
                f"time_zone must be a time zone name such as 'UTC' or 'Europe/Paris'; got {zone!r}."
            ) from None
    return cleaned


def sql_clean(value: Any) -> str:
    """The query as stored (stripped), or SettingError saying why it cannot run."""
    if not isinstance(value, str):
        raise SettingError("must be the text of one SELECT statement.")
    try:
        read_statement_check(value)
    except StatementRefused as exc:
        raise SettingError(str(exc)) from None
    return value.strip()


def every_minutes_clean(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_EVERY_MINUTES:
        raise SettingError(
            f"must be a whole number of minutes from 1 to {MAX_EVERY_MINUTES}, or null to run "
            f"only when asked; got {value!r}."
        )
    return value


def incremental_column_clean(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value.strip()) > 200 or "\x00" in value:
        raise SettingError("must be the name of a column of the query's result (at most 200 characters).")
    return value.strip()
