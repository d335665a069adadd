"""The cohort rule language: validation and translation to a database filter.

A rule set is a group, ``{"all": [...]}`` or ``{"any": [...]}``, whose items are conditions
``{"property": "plan", "op": "eq", "value": "pro"}`` or nested groups. ``{"all": []}`` matches
every profile.

Semantics (identical on SQLite and PostgreSQL; each op is hand-written SQL per vendor because
Django's JSON lookups differ between the two: SQLite turns ``true`` into ``1``, PostgreSQL
compares jsonb types, and SQL NULL for a missing key silently drops rows under NOT):

* A property is *missing* when the key is absent. ``null`` and ``""`` are treated as not set.
* ``eq`` / ``in`` compare scalar values. Text that is exactly a number or ``true``/``false``
  also matches that number or boolean and vice versa, so ``"zip" eq "12345"`` matches 12345
  and "12345" (CSV imports store such cells as numbers). Numbers compare numerically
  (5 == 5.0). Arrays and objects never equal a scalar.
* ``neq`` / ``not_in`` are the exact opposites of ``eq`` / ``in``: a profile without the
  property *is* included ("plan is not pro" keeps users with no plan), as is ``is_not_set``.
* ``contains``: text properties contain the value as a case-sensitive substring; array
  properties contain it as an element.
* ``gt`` / ``gte`` / ``lt`` / ``lte``: a number value compares number properties
  numerically; a date value ``YYYY-MM-DD`` compares the date part of date/datetime text
  (``lte "2024-01-31"`` includes that whole day); any other text compares text by code point.
  Properties of another type never match.
* ``within_last_days`` N: the property is an ISO-8601 date or datetime (UTC) whose calendar
  day is between today minus N days and today, inclusive. Future dates do not match.
* ``more_than_days_ago`` N: the property is an ISO-8601 date or datetime (UTC) whose calendar
  day is before today minus N days ("last seen more than 30 days ago"). Profiles without the
  date do not match (combine with ``is_not_set`` to include them).
* Property ``$distinct_id`` is the profile's distinct id (always set, always text).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from django.db import NotSupportedError
from django.db.models import BooleanField, F, Func, Q
from django.utils import timezone

from cohortsync_site.json_values import JSONValueError, json_value_check

DISTINCT_ID_PROPERTY = "$distinct_id"

OPS = (
    "eq",
    "neq",
    "in",
    "not_in",
    "contains",
    "gt",
    "gte",
    "lt",
    "lte",
    "is_set",
    "is_not_set",
    "within_last_days",
    "more_than_days_ago",
)
_ORDERING_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_NO_VALUE_OPS = {"is_set", "is_not_set"}
_DAY_WINDOW_OPS = {"within_last_days", "more_than_days_ago"}
_NEGATED = {"neq": "eq", "not_in": "in", "is_not_set": "is_set"}
_CONDITION_KEYS = {"property", "op", "value"}

MAX_DEPTH = 10
MAX_CONDITIONS = 500
MAX_IN_VALUES = 1000
MAX_PROPERTY_NAME = 255

_INTEGER_TEXT = re.compile(r"-?(?:0|[1-9][0-9]{0,14})")
_DECIMAL_TEXT = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]+")
_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE_PREFIX_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"
_DATE_PREFIX_REGEX = "^[0-9]{4}-[0-9]{2}-[0-9]{2}"

Scalar = str | int | float | bool


class RuleError(ValueError):
    """The rules are malformed; the message names the first bad condition by its path and
    `problems` lists every one."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__(self.problems[0])


# --- Validation --------------------------------------------------------------------------


def validate_rules(rules: Any) -> None:
    """Raise RuleError listing every bad group and condition, or return None."""
    problems = rules_problems(rules)
    if problems:
        raise RuleError(problems)


def rules_problems(rules: Any) -> list[str]:
    """Every problem of the rules, each naming its group or condition by path, in order."""
    try:
        # NaN, NUL, lone surrogates, huge integers: neither database stores or binds them.
        json_value_check(rules)
    except JSONValueError as exc:
        return [f"{exc}."]
    if not isinstance(rules, dict) or not _group_key(rules):
        return ['Rules must be a group: a JSON object like {"all": [...]} or {"any": [...]}.']
    problems: list[str] = []
    _validate_group(rules, path="", depth=1, counter=[0], problems=problems)
    return problems


def _group_key(node: dict[str, Any]) -> str | None:
    if len(node) == 1 and next(iter(node)) in ("all", "any"):
        return next(iter(node))
    return None


def _validate_group(
    node: dict[str, Any], *, path: str, depth: int, counter: list[int], problems: list[str]
) -> None:
    key = _group_key(node)
    assert key is not None
    where = path or "rules"
    if depth > MAX_DEPTH:
        problems.append(f"{where}: groups are nested more than {MAX_DEPTH} levels deep.")
        return
    children = node[key]
    if not isinstance(children, list):
        problems.append(f"{where}: '{key}' must be a list of conditions or groups.")
        return
    if key == "any" and not children:
        problems.append(f"{where}: 'any' group is empty, so nothing could match; add a condition.")
    for index, child in enumerate(children):
        child_path = f"{path}.{key}[{index}]" if path else f"{key}[{index}]"
        if isinstance(child, dict) and _group_key(child):
            _validate_group(child, path=child_path, depth=depth + 1, counter=counter, problems=problems)
            continue
        counter[0] += 1
        if counter[0] == MAX_CONDITIONS + 1:
            problems.append(f"Rules have more than {MAX_CONDITIONS} conditions.")
        if counter[0] > MAX_CONDITIONS:
            continue
        problem = _condition_problem(child, path=child_path)
        if problem:
            problems.append(problem)


def _condition_problem(node: Any, *, path: str) -> str | None:
    try:
        _validate_condition(node, path=path)
    except RuleError as exc:
        return str(exc)
    return None


def _validate_condition(node: Any, *, path: str) -> None:
    if not isinstance(node, dict):
        raise RuleError(
            f'{path}: expected a condition {{"property": ..., "op": ..., "value": ...}} '
            'or a group {"all": [...]} / {"any": [...]}.'
        )
    unknown = sorted(set(node) - _CONDITION_KEYS)
    if unknown:
        raise RuleError(
            f"{path}: unexpected key '{unknown[0]}' (a condition has 'property', 'op' and "
            "'value'; a group has exactly one key, 'all' or 'any')."
        )
    prop = node.get("property")
    if not isinstance(prop, str) or not prop.strip():
        raise RuleError(f"{path}: 'property' must be a non-empty property name.")
    if '"' in prop or len(prop) > MAX_PROPERTY_NAME:
        raise RuleError(
            f"{path}: property name must be at most {MAX_PROPERTY_NAME} characters with no "
            'double quote (").'
        )
    op = node.get("op")
    if op not in OPS:
        raise RuleError(f"{path}: unknown op {op!r} (expected one of {', '.join(OPS)}).")
    if op in _NO_VALUE_OPS:
        if "value" in node:
            raise RuleError(f"{path}: op '{op}' takes no 'value'; remove it.")
        return
    if "value" not in node:
        raise RuleError(f"{path}: op '{op}' needs a 'value'.")
    value = node["value"]
    if op in ("eq", "neq"):
        _require_scalar(value, path=path, op=op)
    elif op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            raise RuleError(f"{path}: 'value' must be a non-empty list for op '{op}'.")
        if len(value) > MAX_IN_VALUES:
            raise RuleError(f"{path}: op '{op}' accepts at most {MAX_IN_VALUES} values.")
        for item in value:
            _require_scalar(item, path=path, op=op)
    elif op == "contains":
        _require_scalar(value, path=path, op=op)
        if value == "":
            raise RuleError(f"{path}: op 'contains' needs a non-empty 'value'.")
    elif op in _ORDERING_OPS:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise RuleError(f"{path}: op '{op}' needs a number or a date/text 'value'.")
        if isinstance(value, str) and _DATE_TEXT.fullmatch(value):
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                raise RuleError(f"{path}: {value!r} is not a valid date (YYYY-MM-DD).") from None
    elif op in _DAY_WINDOW_OPS:
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0 or value > 36500:
            raise RuleError(f"{path}: {op} needs a positive whole number of days, got {value!r}.")


def _require_scalar(value: Any, *, path: str, op: str) -> None:
    if value is None:
        raise RuleError(
            f"{path}: op '{op}' cannot compare with null; use 'is_set' or 'is_not_set'."
        )
    if not isinstance(value, str | int | float | bool):
        raise RuleError(
            f"{path}: op '{op}' compares with text, a number or true/false, not "
            f"{type(value).__name__ if not isinstance(value, list | dict) else 'a list or object'}."
        )


# --- Translation to SQL ------------------------------------------------------------------


def rules_to_q(rules: dict[str, Any], *, now: dt.datetime | None = None) -> Q:
    """A Q over Profile that the database evaluates; raises RuleError for bad rules."""
    validate_rules(rules)
    today = (now or timezone.now()).astimezone(dt.UTC).date()
    return _group_to_q(rules, today=today)


def _group_to_q(node: dict[str, Any], *, today: dt.date) -> Q:
    key = _group_key(node)
    children = node[key]
    if not children:
        return Q()
    parts = [
        _group_to_q(child, today=today) if _group_key(child) else _condition_to_q(child, today=today)
        for child in children
    ]
    combined = parts[0]
    for part in parts[1:]:
        combined = (combined & part) if key == "all" else (combined | part)
    return combined


def _condition_to_q(node: dict[str, Any], *, today: dt.date) -> Q:
    op = node["op"]
    positive = _NEGATED.get(op, op)
    test = PropertyTest(prop=node["property"], op=positive, value=node.get("value"), today=today)
    return ~Q(test) if op in _NEGATED else Q(test)


def equality_candidates(value: Scalar) -> list[Scalar]:
    """The JSON values a rule value matches: itself plus its text/number/boolean twin."""
    candidates: list[Scalar] = [value]
    if isinstance(value, bool):
        candidates.append("true" if value else "false")
    elif isinstance(value, int | float):
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
            candidates.append(str(int(value)))
        else:
            candidates.append(str(value))
    else:
        inferred = infer_scalar(value)
        if not isinstance(inferred, str):
            candidates.append(inferred)
    return candidates


def infer_scalar(text: str) -> Scalar:
    """Conservative typing of text (CSV cells): exact integers, decimals and booleans only.

    Leading zeros ("02134"), signs, exponents, spaces and integers longer than 15 digits stay
    text, so zip codes, phone numbers and long ids are never mangled.
    """
    if _INTEGER_TEXT.fullmatch(text):
        return int(text)
    if _DECIMAL_TEXT.fullmatch(text) and len(text) <= 17:
        return float(text)
    lowered = text.lower()
    if lowered in ("true", "false") and text in ("true", "false", "True", "False", "TRUE", "FALSE"):
        return lowered == "true"
    return text


class PropertyTest(Func):
    """One positive condition as a boolean SQL expression that is never NULL.

    Never-NULL matters: the negated ops wrap it in NOT, and NOT NULL would drop profiles
    that lack the property instead of keeping them.
    """

    conditional = True
    output_field = BooleanField()

    def __init__(self, *, prop: str, op: str, value: Any, today: dt.date) -> None:
        self.prop = prop
        self.op = op
        self.value = value
        self.today = today
        column = "distinct_id" if prop == DISTINCT_ID_PROPERTY else "properties"
        super().__init__(F(column))

    def as_sql(self, compiler, connection, **extra_context):  # type: ignore[override]
        column_sql, column_params = compiler.compile(self.source_expressions[0])
        if self.prop == DISTINCT_ID_PROPERTY:
            builder = _DistinctIdSql(column_sql, vendor=connection.vendor)
        elif connection.vendor == "postgresql":
            builder = _PostgresSql(column_sql, self.prop)
        elif connection.vendor == "sqlite":
            builder = _SqliteSql(column_sql, self.prop)
        else:
            raise NotSupportedError("Cohort rules support only PostgreSQL and SQLite.")
        if column_params:
            raise NotSupportedError("A property test needs a plain column.")
        sql, params = builder.build(op=self.op, value=self.value, today=self.today)
        return f"({sql})", tuple(params)


def _ordering_kind(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number"
    if isinstance(value, str) and _DATE_TEXT.fullmatch(value):
        return "date"
    return "text"


def _day_window(op: str, value: int, today: dt.date) -> tuple[str, str]:
    """Inclusive (first, last) calendar days, as ISO text, that the date op accepts."""
    if op == "within_last_days":
        return (today - dt.timedelta(days=value)).isoformat(), today.isoformat()
    return "0000-01-01", (today - dt.timedelta(days=value + 1)).isoformat()


class _PostgresSql:
    """PostgreSQL: equality and array membership use jsonb containment (@>), which a GIN
    index can serve; text comparisons use the "C" collation to match SQLite's code-point
    order whatever the database's locale."""

    def __init__(self, column: str, prop: str) -> None:
        self.c = column
        self.prop = prop

    def _contains(self, fragment: Any) -> tuple[str, list[Any]]:
        return f"{self.c} @> %s::jsonb", [json.dumps({self.prop: fragment})]

    def build(self, *, op: str, value: Any, today: dt.date) -> tuple[str, list[Any]]:
        c, key = self.c, self.prop
        typeof = f"jsonb_typeof({c} -> %s)"
        text = f"({c} ->> %s)"
        if op in ("eq", "in"):
            values = [value] if op == "eq" else value
            parts: list[str] = []
            params: list[Any] = []
            for candidate in _unique(v for item in values for v in equality_candidates(item)):
                sql, part_params = self._contains(candidate)
                parts.append(sql)
                params += part_params
            return " OR ".join(parts), params
        if op == "contains":
            sql, params = self._contains([value])
            if isinstance(value, str):
                sql = (
                    f"{sql} OR COALESCE({typeof} = 'string' AND strpos({text}, %s) > 0, false)"
                )
                params += [key, key, value]
            return sql, params
        if op in _ORDERING_OPS:
            operator = _ORDERING_OPS[op]
            kind = _ordering_kind(value)
            if kind == "number":
                return (
                    f"CASE WHEN {typeof} = 'number' THEN ({c} -> %s)::numeric {operator} %s "
                    "ELSE false END",
                    [key, key, value],
                )
            if kind == "date":
                return (
                    f"CASE WHEN {typeof} = 'string' AND {text} ~ %s "
                    f'THEN left({text}, 10) COLLATE "C" {operator} %s ELSE false END',
                    [key, key, _DATE_PREFIX_REGEX, key, value],
                )
            return (
                f"CASE WHEN {typeof} = 'string' "
                f'THEN {text} COLLATE "C" {operator} %s ELSE false END',
                [key, key, value],
            )
        if op == "is_set":
            return (
                f"COALESCE(({c} -> %s) NOT IN ('null'::jsonb, '\"\"'::jsonb), false)",
                [key],
            )
        if op in _DAY_WINDOW_OPS:
            low, high = _day_window(op, value, today)
            return (
                f"CASE WHEN {typeof} = 'string' AND {text} ~ %s "
                f'THEN left({text}, 10) COLLATE "C" BETWEEN %s AND %s ELSE false END',
                [key, key, _DATE_PREFIX_REGEX, key, low, high],
            )
        raise AssertionError(op)


class _SqliteSql:
    """SQLite: json_type() tells text from integer/real/true/false/null, which
    json_extract() alone conflates (true comes back as 1)."""

    def __init__(self, column: str, prop: str) -> None:
        self.c = column
        self.path = '$."' + prop + '"'

    def build(self, *, op: str, value: Any, today: dt.date) -> tuple[str, list[Any]]:
        c, path = self.c, self.path
        typeof = f"json_type({c}, %s)"
        extract = f"json_extract({c}, %s)"
        if op in ("eq", "in"):
            values = [value] if op == "eq" else value
            parts = []
            params: list[Any] = []
            for candidate in _unique(v for item in values for v in equality_candidates(item)):
                sql, part_params = self._typed_equal(typeof, extract, path, candidate)
                parts.append(sql)
                params += part_params
            return f"COALESCE({' OR '.join(parts)}, 0)", params
        if op == "contains":
            element_sql, element_params = self._typed_equal("type", "value", None, value)
            sql = (
                f"CASE {typeof} WHEN 'array' THEN EXISTS (SELECT 1 FROM json_each({c}, %s) "
                f"WHERE {element_sql})"
            )
            params = [path, path, *element_params]
            if isinstance(value, str):
                sql += f" WHEN 'text' THEN instr({extract}, %s) > 0"
                params += [path, value]
            return sql + " ELSE 0 END", params
        if op in _ORDERING_OPS:
            operator = _ORDERING_OPS[op]
            kind = _ordering_kind(value)
            if kind == "number":
                return (
                    f"CASE WHEN {typeof} IN ('integer', 'real') THEN {extract} {operator} %s "
                    "ELSE 0 END",
                    [path, path, value],
                )
            if kind == "date":
                return (
                    f"CASE WHEN {typeof} = 'text' AND {extract} GLOB %s "
                    f"THEN substr({extract}, 1, 10) {operator} %s ELSE 0 END",
                    [path, path, _DATE_PREFIX_GLOB, path, value],
                )
            return (
                f"CASE WHEN {typeof} = 'text' THEN {extract} {operator} %s ELSE 0 END",
                [path, path, value],
            )
        if op == "is_set":
            return (
                f"CASE {typeof} WHEN 'null' THEN 0 WHEN 'text' THEN {extract} <> '' "
                f"ELSE {typeof} IS NOT NULL END",
                [path, path, path],
            )
        if op in _DAY_WINDOW_OPS:
            low, high = _day_window(op, value, today)
            return (
                f"CASE WHEN {typeof} = 'text' AND {extract} GLOB %s "
                f"THEN substr({extract}, 1, 10) BETWEEN %s AND %s ELSE 0 END",
                [path, path, _DATE_PREFIX_GLOB, path, low, high],
            )
        raise AssertionError(op)

    @staticmethod
    def _typed_equal(
        typeof: str, extract: str, path: str | None, candidate: Scalar
    ) -> tuple[str, list[Any]]:
        """typeof/extract are SQL taking `path` as a parameter (or bare json_each columns)."""
        path_params = [path] if path is not None else []
        if isinstance(candidate, bool):
            return f"{typeof} = %s", [*path_params, "true" if candidate else "false"]
        if isinstance(candidate, int | float):
            return (
                f"({typeof} IN ('integer', 'real') AND {extract} = %s)",
                [*path_params, *path_params, candidate],
            )
        return f"({typeof} = 'text' AND {extract} = %s)", [*path_params, *path_params, candidate]


class _DistinctIdSql:
    """The distinct_id column: always set text, so only text candidates can match."""

    def __init__(self, column: str, *, vendor: str) -> None:
        self.c = column
        self.vendor = vendor

    def build(self, *, op: str, value: Any, today: dt.date) -> tuple[str, list[Any]]:
        c = self.c
        collated = f'{c} COLLATE "C"' if self.vendor == "postgresql" else c
        if op in ("eq", "in"):
            values = [value] if op == "eq" else value
            texts = _unique(
                v for item in values for v in equality_candidates(item) if isinstance(v, str)
            )
            return f"{c} IN ({', '.join(['%s'] * len(texts))})", texts
        if op == "contains":
            if not isinstance(value, str):
                return "1 = 0", []
            function = "strpos" if self.vendor == "postgresql" else "instr"
            return f"{function}({c}, %s) > 0", [value]
        if op in _ORDERING_OPS:
            operator = _ORDERING_OPS[op]
            kind = _ordering_kind(value)
            if kind == "number":
                return "1 = 0", []
            if kind == "date":
                return (
                    f"{self._date_prefix()} AND substr({collated}, 1, 10) {operator} %s",
                    [self._date_pattern(), value],
                )
            return f"{collated} {operator} %s", [value]
        if op == "is_set":
            return f"{c} <> ''", []
        if op in _DAY_WINDOW_OPS:
            low, high = _day_window(op, value, today)
            return (
                f"{self._date_prefix()} AND substr({collated}, 1, 10) BETWEEN %s AND %s",
                [self._date_pattern(), low, high],
            )
        raise AssertionError(op)

    def _date_prefix(self) -> str:
        return f"{self.c} ~ %s" if self.vendor == "postgresql" else f"{self.c} GLOB %s"

    def _date_pattern(self) -> str:
        return _DATE_PREFIX_REGEX if self.vendor == "postgresql" else _DATE_PREFIX_GLOB


def _unique(values: Any) -> list[Any]:
    """Distinct values in order, keeping 1 and True apart (they are equal in Python)."""
    seen: set[tuple[str, Any]] = set()
    result = []
    for value in values:
        marker = (type(value).__name__, value)
        if marker not in seen:
            seen.add(marker)
            result.append(value)
    return result
