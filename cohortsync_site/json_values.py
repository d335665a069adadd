"""One check for every JSON value CohortSync stores: imports, `apply`, rules, admin fields.

PostgreSQL's jsonb and SQLite's JSON1 refuse, or silently change, values that Python's
json module happily produces: NaN and Infinity (also what `1e400` parses to), NUL
characters, lone UTF-16 surrogates such as "\\ud800" (not Unicode text, so not encodable as
UTF-8), integers beyond 64 bits (SQLite cannot bind them and compares them as
approximate reals), and very deep nesting (Python's encoder and decoder hit their
recursion limit). Checking here, before anything is written, turns each into a message
naming where the value sits, instead of a database error or a traceback halfway through.

Paths read like the rule language's: `address.city`, `tags[3]`, `["odd key"]`.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# Levels of objects and arrays in one stored value, counting the value itself: a profile's
# properties object, a cohort's rules, an options object. Rules need 22 at their own limit
# (10 groups); real profile data rarely goes past 5.
MAX_DEPTH = 32
# Signed 64-bit: what SQLite can bind and compare exactly (PostgreSQL would take more).
MAX_INTEGER = 2**63 - 1
MIN_INTEGER = -(2**63)

_SURROGATE = re.compile("[\ud800-\udfff]")
_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")
_SHOWN_TEXT = 60


class JSONValueError(ValueError):
    """A value that cannot be stored; `path` says where (empty: the value itself).

    `problem` is a sentence fragment without a final period ("contains a NUL character
    ..."), so each caller can frame it: "line 7: property bio: ...", "rules: all[0].value:
    ...".
    """

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else f"the value {problem}")
        self.path = path
        self.problem = problem


def json_value_check(value: Any, *, path: str = "", max_depth: int = MAX_DEPTH) -> None:
    """Raise JSONValueError for the first part of `value` that cannot be stored as JSON.

    Nesting beyond `max_depth` is reported at the outermost key or index holding it
    (`address`, not `address.a[0][0]...`), which is where someone would go to fix it.
    """
    try:
        _check(value, path, max_depth)
    except _TooDeep as exc:
        raise JSONValueError(
            exc.outer_path if exc.outer_path is not None else path,
            f"is nested more than {max_depth} levels deep (objects and arrays); flatten it",
        ) from None


class _TooDeep(Exception):
    def __init__(self) -> None:
        self.outer_path: str | None = None


def json_text_problem(text: str) -> str | None:
    """What makes this text unstorable (a NUL or a lone surrogate), or None."""
    if "\x00" in text:
        return "contains a NUL character (\\u0000); remove it"
    if not text.isascii():
        found = _SURROGATE.search(text)
        if found:
            return (
                f"contains a lone surrogate (\\u{ord(found.group()):04x}), which is not "
                "Unicode text; fix the encoding of the source data"
            )
    return None


def json_loads(text: str | bytes, *, cls: type[json.JSONDecoder] | None = None) -> Any:
    """json.loads that raises JSONValueError, not RecursionError or a bare ValueError, for
    documents it cannot read; json.JSONDecodeError still means "not JSON".

    NaN and Infinity are parsed (Python's json accepts them) so that the value check can
    name the place they appear at.
    """
    try:
        return json.loads(text, cls=cls)
    except RecursionError:
        raise JSONValueError(
            "", f"is nested too deeply (more than {MAX_DEPTH} levels of objects and arrays)"
        ) from None
    except json.JSONDecodeError:
        raise
    except ValueError:
        # Python refuses to read integers of more than 4,300 digits (sys.int_info).
        raise JSONValueError(
            "", "holds a whole number too long to read (thousands of digits); store it as text"
        ) from None


def shown_text(text: str) -> str:
    """Text as a JSON string literal, ASCII only, shortened: safe in any message."""
    if len(text) > _SHOWN_TEXT:
        return json.dumps(text[:_SHOWN_TEXT]) + "..."
    return json.dumps(text)


_isfinite = math.isfinite


def path_join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{shown_text(key)}]"


# Where a value sits, built without formatting anything: the root path (text), or
# (where the container sits, key or index). Rendered only for a value that fails.
_Where = str | tuple[Any, str | int]


def _render(where: _Where) -> str:
    if isinstance(where, str):
        return where
    parent, key = where
    return path_join(_render(parent), key)


def _check(value: Any, where: _Where, depth_left: int) -> None:
    # Called for every value of every imported row: scalars are checked inline, without a
    # call each, and nothing is formatted unless a value fails.
    kind = type(value)
    if kind is dict or kind is list:
        if depth_left < 1:
            raise _TooDeep
        items = value.items() if kind is dict else enumerate(value)
        for key, item in items:
            if kind is dict:
                if type(key) is not str:
                    raise JSONValueError(_render(where), "has a key that is not text")
                if "\x00" in key or not key.isascii():
                    problem = json_text_problem(key)
                    if problem:
                        raise JSONValueError(_render((where, key)), f"the key {problem}")
            item_kind = type(item)
            if item_kind is str:
                if "\x00" in item or not item.isascii():
                    problem = json_text_problem(item)
                    if problem:
                        raise JSONValueError(_render((where, key)), problem)
            elif item_kind is bool or item is None:
                continue
            elif item_kind is float:
                if not _isfinite(item):
                    raise JSONValueError(_render((where, key)), _non_finite_problem(item))
            elif item_kind is not int or not MIN_INTEGER <= item <= MAX_INTEGER:
                try:
                    _check(item, (where, key), depth_left - 1)
                except _TooDeep as exc:
                    exc.outer_path = _render((where, key))
                    raise
    elif kind is str:
        problem = json_text_problem(value)
        if problem:
            raise JSONValueError(_render(where), problem)
    elif kind is int:
        if not MIN_INTEGER <= value <= MAX_INTEGER:
            raise JSONValueError(
                _render(where),
                "is a whole number beyond 64 bits (above 9223372036854775807 or below "
                "-9223372036854775808); store it as text",
            )
    elif kind is float:
        if not _isfinite(value):
            raise JSONValueError(_render(where), _non_finite_problem(value))
    elif value is None or kind is bool:
        pass
    elif isinstance(value, str | int | float | dict | list):
        # Subclasses (an IntEnum, an OrderedDict): checked like their base type.
        _check(_plain(value), where, depth_left)
    else:
        raise JSONValueError(_render(where), f"is not a JSON value ({kind.__name__})")


def _plain(value: Any) -> Any:
    for base in (bool, str, int, float, dict, list):
        if isinstance(value, base):
            return base(value)
    raise AssertionError(value)


def _non_finite_problem(value: float) -> str:
    if math.isnan(value):
        return "is NaN, which is not a number JSON can store; use null or leave it out"
    sign = "-" if value < 0 else ""
    return (
        f"is {sign}Infinity (a number such as {sign}1e400 is too large to store); numbers "
        "must be finite"
    )
