"""Rules shared by both SFMC connectors: identities, payload sizes, mapped property values."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from destinations.base import MembershipChange, PlainIdentity, PushOutcome
from destinations.errors import InvalidIdentityError

# SFMC's documented limit for subscriber and contact keys.
MAX_KEY_LENGTH = 254
# Keys contact_key_normalize returns unchanged (PostgreSQL regex): no ':' anywhere and a
# printable, non-space ASCII character at each end, so strip() has nothing to remove. The
# engine takes such values as they are in the database (first exports of a million keys).
PLAIN_KEY = PlainIdentity(pattern=r"^[!-9;-~](?:[^:]*[!-9;-~])?$", max_length=MAX_KEY_LENGTH)
# The rowset endpoint's payload limit; the async endpoint publishes none, so the same is used.
MAX_PAYLOAD_BYTES = 5_000_000
# Leave room for the JSON wrapper and escaping differences between our estimate and the wire.
PAYLOAD_HEADROOM_BYTES = 50_000


def contact_key_normalize(raw_value: Any) -> str:
    """The key to send for a user, or InvalidIdentityError saying why it cannot be sent.

    Keys are never altered beyond trimming whitespace: a shortened or rewritten key would
    silently write to another contact.
    """
    value = "" if raw_value is None else str(raw_value).strip()
    if not value:
        raise InvalidIdentityError("The identity is empty, so there is no SFMC key to write.")
    if len(value) > MAX_KEY_LENGTH:
        raise InvalidIdentityError(
            f"The identity is {len(value)} characters long; SFMC keys are limited to "
            f"{MAX_KEY_LENGTH} characters."
        )
    if ":" in value:
        raise InvalidIdentityError(
            "The identity contains ':', which SFMC does not allow in subscriber or contact keys."
        )
    return value


def mapped_values(
    property_mapping: Mapping[str, str] | None, properties: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Column values for the mapped profile properties, with Segment's value rules.

    Nested values (objects, lists) have no column type to go into and are dropped; dates
    become ISO-8601 strings (SFMC rejects other date formats); a missing or null property is
    left out so a sync never blanks a column it has no value for.
    """
    if not property_mapping or not properties:
        return {}
    values: dict[str, Any] = {}
    for prop, column in property_mapping.items():
        # The engine may key properties by profile property or already by column.
        if prop in properties:
            value = properties[prop]
        elif column in properties:
            value = properties[column]
        else:
            continue
        converted = _column_value(value)
        if converted is not None:
            values[str(column)] = converted
    return values


def _column_value(value: Any) -> Any:
    if value is None or isinstance(value, Mapping | list | tuple | set):
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
            return value.replace(tzinfo=None).isoformat() + "Z"
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def json_bytes(value: Any) -> bytes:
    """Compact JSON as it is sent: the one encoding that both sizes a payload and is its
    body (encoding a 32,000-row async job twice cost ~0.1 s of the GIL per job)."""
    return json.dumps(value, separators=(",", ":"), default=str, allow_nan=False).encode()


def json_size(value: Any) -> int:
    return len(json_bytes(value))


def chunks_by_size(
    items: Sequence[Any], *, max_items: int, max_bytes: int = MAX_PAYLOAD_BYTES - PAYLOAD_HEADROOM_BYTES
) -> Iterator[tuple[int, int, bytes]]:
    """(start, end, body) slices of `items` with at most `max_items` each and an encoded
    size under `max_bytes` (a single oversized item still gets its own slice); `body` is
    the slice encoded as a JSON array."""
    if len(items) <= max_items:
        # The usual case, sized in one encoding instead of one per item (32,000 for an
        # async job), and that encoding is the body.
        body = json_bytes(list(items))
        if len(body) <= max_bytes:
            if items:
                yield 0, len(items), body
            return
    start, size = 0, 0
    for index, item in enumerate(items):
        item_size = json_size(item) + 1
        if index > start and (index - start >= max_items or size + item_size > max_bytes):
            yield start, index, json_bytes(list(items[start:index]))
            start, size = index, 0
        size += item_size
    if start < len(items):
        yield start, len(items), json_bytes(list(items[start:]))


def outcomes_ok(changes: Iterable[MembershipChange]) -> list[PushOutcome]:
    return [PushOutcome(identity=c.identity, ok=True) for c in changes]


def outcomes_failed(
    changes: Iterable[MembershipChange], *, message: str, code: str = "", retriable: bool = False
) -> list[PushOutcome]:
    return [
        PushOutcome(identity=c.identity, ok=False, code=code, message=message, retriable=retriable)
        for c in changes
    ]
