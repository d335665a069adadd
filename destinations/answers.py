"""A destination's answer checked against its documented shape before anything in it is trusted.

A 2xx is not proof of a write: a proxy, a captive portal or a half-read body answers 2xx
too. Each client reads every answer through an `Answer`, which raises
UnexpectedResponseError (code `unexpected_response`, retriable) for anything but the
documented status, a JSON content type, JSON that parses, and the documented type. The
client then checks the fields and counts it relies on with `Answer.unexpected()`. The
message names the HTTP status, the content type and what the call was for; never the body,
which may carry anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from destinations.errors import UnexpectedResponseError

_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]{1,40}/[a-z0-9!#$&^_.+-]{1,60}")


def media_type(response: requests.Response) -> str:
    """The answer's media type (no parameters), or a placeholder for none or nonsense."""
    value = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if not value:
        return "no content type"
    return value if _MEDIA_TYPE.fullmatch(value) else "an unreadable content type"


def json_kind(value: Any) -> str:
    """How a JSON value is called in a message: 'an array', 'a string', ..."""
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "null"


@dataclass(frozen=True)
class Answer:
    """One answer of `service` to the request made to `purpose` (a verb phrase: "write rows
    to data extension 'X'"). `advice` ends every message (what happens to the users, what
    to check)."""

    response: requests.Response
    service: str
    purpose: str
    advice: str = ""

    def unexpected(self, problem: str) -> UnexpectedResponseError:
        status = self.response.status_code
        message = (
            f"{self.service} gave an unexpected answer to the request to {self.purpose}: HTTP "
            f"{status} ({media_type(self.response)}), {problem}. Nothing in it was taken as "
            "written."
        )
        return UnexpectedResponseError(f"{message} {self.advice}".strip(), status=status)

    def json(self, *, statuses: Collection[int] = (200,)) -> Any:
        """The parsed body of a documented status with a JSON content type."""
        status = self.response.status_code
        if status not in statuses:
            raise self.unexpected("a status this call does not answer with")
        if "json" not in media_type(self.response):
            raise self.unexpected("not JSON")
        try:
            return json.loads(self.response.content)
        except (ValueError, RecursionError):
            raise self.unexpected("JSON that does not parse (cut short?)") from None

    def object(self, *, statuses: Collection[int] = (200,)) -> dict[str, Any]:
        data = self.json(statuses=statuses)
        if not isinstance(data, dict):
            raise self.unexpected(f"{json_kind(data)} where an object is documented")
        return data

    def array(self, *, statuses: Collection[int] = (200,)) -> list[Any]:
        data = self.json(statuses=statuses)
        if not isinstance(data, list):
            raise self.unexpected(f"{json_kind(data)} where an array is documented")
        return data

    def text(self, data: Mapping[str, Any], name: str) -> str:
        """data[name], which must be a non-empty string."""
        value = data.get(name)
        if not isinstance(value, str) or not value.strip():
            raise self.unexpected(f"without the text '{name}'")
        return value

    def objects(self, value: Any, name: str) -> list[dict[str, Any]]:
        """`value` (the field `name`), which must be an array of objects."""
        if not isinstance(value, list):
            raise self.unexpected(f"without the array '{name}'")
        if not all(isinstance(item, dict) for item in value):
            raise self.unexpected(f"with entries of '{name}' that are not objects")
        return value

    def count(self, data: Mapping[str, Any], name: str) -> int:
        """data[name], which must be a whole number >= 0."""
        value = data.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.unexpected(f"without the count '{name}'")
        return value
