"""The catalogue of JSON values no database can store, shared by the bad-input suite.

Each entry is written as it appears in a JSON document (NaN and Infinity are not JSON, but
Python's parser, and so every JSON field, accepts them), with the problem the one value
check (cohortsync_site.json_values) reports for it. Every entry point that takes JSON is
tested with every entry: imports, `apply`, cohort rules and the admin's JSON fields.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

NAN = "is NaN, which is not a number JSON can store; use null or leave it out"
NUL = "contains a NUL character (\\u0000); remove it"
TOO_DEEP = "is nested more than 32 levels deep (objects and arrays); flatten it"
HUGE_INTEGER = (
    "is a whole number beyond 64 bits (above 9223372036854775807 or below "
    "-9223372036854775808); store it as text"
)


def infinity(sign: str = "") -> str:
    return (
        f"is {sign}Infinity (a number such as {sign}1e400 is too large to store); numbers "
        "must be finite"
    )


def surrogate(code: str) -> str:
    return (
        f"contains a lone surrogate (\\u{code}), which is not Unicode text; fix the encoding "
        "of the source data"
    )


def nested(levels: int, inner: str = "1") -> str:
    return "[" * levels + inner + "]" * levels


@dataclass(frozen=True)
class BadValue:
    id: str
    json: str  # the value as written in a JSON document
    problem: str  # what the check says about it
    # Where the problem is, below the value itself ('["a\\u0000"]' when a key is bad).
    below: str = ""

    def value(self) -> Any:
        return json.loads(self.json)

    def message(self, path: str) -> str:
        """The check's message for this value placed at `path` (no final period)."""
        return f"{path}{self.below}: {self.problem}"


BAD_VALUES = [
    BadValue("nan", "NaN", NAN),
    BadValue("infinity", "Infinity", infinity()),
    BadValue("minus-infinity", "-Infinity", infinity("-")),
    BadValue("1e400", "1e400", infinity()),
    BadValue("minus-1e400", "-1e400", infinity("-")),
    BadValue("integer-beyond-64-bits", "18446744073709551616", HUGE_INTEGER),
    BadValue("nul-in-text", '"ab\\u0000cd"', NUL),
    BadValue("lone-high-surrogate", '"\\ud800"', surrogate("d800")),
    BadValue("lone-low-surrogate", '"x\\udfff"', surrogate("dfff")),
    BadValue("nested-in-a-list", '["ok", [1, NaN]]', NAN, below="[1][1]"),
    BadValue("nul-in-a-key", '{"a\\u0000": 1}', f"the key {NUL}", below='["a\\u0000"]'),
    BadValue("surrogate-in-a-key", '{"\\udc80": 1}', f"the key {surrogate('dc80')}", below='["\\udc80"]'),
    BadValue("40-levels-deep", nested(40), TOO_DEEP),
]
BAD_VALUE_IDS = [bad.id for bad in BAD_VALUES]
# Deeper than Python's own parser goes: refused for the whole document or line.
TOO_DEEP_TO_READ = nested(1000)
TOO_DEEP_TO_READ_PROBLEM = "is nested too deeply (more than 32 levels of objects and arrays)"
