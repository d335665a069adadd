"""Source values as profile properties, converted like file imports.

Timestamps become ISO-8601 text in UTC ending in "Z", whatever the source's time zone (a
timestamp stored without one is read in the source's `time_zone` option, UTC by default);
dates stay YYYY-MM-DD; decimals become numbers (whole ones integers); NULL removes the
property. SQLite has no date types, so its text that is exactly an ISO-8601 date and time
is converted the same way.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

# The largest integer a JSON consumer reads exactly; larger whole decimals stay decimals.
MAX_EXACT_INTEGER = 2**53
_TEXT_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)?"
)


class ValueConversionError(ValueError):
    """A value that cannot become a property; the message says which and why."""


def utc_text(value: dt.datetime, zone: dt.tzinfo) -> str:
    """A datetime as ISO-8601 in UTC ending in Z; a naive one is read in `zone`."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def property_value(value: Any, *, zone: ZoneInfo, text_datetimes: bool = False) -> Any:
    """The JSON value a property holds for this source value (None: remove the property).

    Raises ValueConversionError for values JSON cannot hold (NaN, Infinity, binary data
    that is not UTF-8 text).
    """
    if value is None or isinstance(value, bool | str | int):
        if text_datetimes and isinstance(value, str) and _TEXT_DATETIME.fullmatch(value):
            try:
                return utc_text(dt.datetime.fromisoformat(value), zone)
            except ValueError:
                return value  # looks like a timestamp, is not one (month 13): keep the text
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueConversionError(f"{value} is not a number JSON can store")
        return value
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueConversionError(f"{value} is not a number JSON can store")
        if value == value.to_integral_value() and abs(value) < MAX_EXACT_INTEGER:
            return int(value)
        return float(value)
    if isinstance(value, dt.datetime):
        return utc_text(value, zone)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueConversionError("binary data that is not UTF-8 text") from None
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, list | tuple):
        return [property_value(item, zone=zone, text_datetimes=text_datetimes) for item in value]
    if isinstance(value, dict):
        return {
            str(key): property_value(item, zone=zone, text_datetimes=text_datetimes)
            for key, item in value.items()
        }
    return str(value)
