"""Fetch what a sandbox emulator received, shaped into tables for the admin.

Only for destinations whose API host is not official (the bundled emulators). The state
JSON is rendered generically: whatever collections the emulator reports become tables,
so a newer emulator with more keys still renders, and a missing key is simply absent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from destinations.errors import DestinationError, TransientError
from destinations.http import HttpTransport, RetryPolicy
from destinations.kinds import kind_spec
from destinations.kindspec import KindSpec, UnknownKindError
from destinations.models import Destination
from destinations.selectors import destination_is_sandbox

STATE_ROW_LIMIT = 200
FETCH_TIMEOUT = (3.0, 10.0)
# Long cell values (tokens never appear, but payload dumps might) are cut for display.
MAX_CELL_LENGTH = 200


class SandboxInspectError(Exception):
    """The sandbox state cannot be shown; the message says why."""


@dataclass(frozen=True)
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]
    total: int | None = None
    highlighted: frozenset[str] = frozenset()
    note: str = ""

    @property
    def marked_rows(self) -> list[list[tuple[str, bool]]]:
        """Rows as (cell, is_highlighted) pairs, for templates that cannot zip."""
        marks = [column in self.highlighted for column in self.columns]
        return [list(zip(row, marks, strict=False)) for row in self.rows]

    @property
    def is_truncated(self) -> bool:
        return self.total is not None and self.total > len(self.rows)


@dataclass
class SandboxSnapshot:
    url: str
    platform: str
    tables: list[Table] = field(default_factory=list)
    error: str = ""
    raw_json: str = ""


def _spec(destination: Destination) -> KindSpec:
    try:
        return kind_spec(destination.kind)
    except UnknownKindError as exc:
        raise SandboxInspectError(str(exc)) from None


def sandbox_state_url(destination: Destination, *, limit: int = STATE_ROW_LIMIT) -> str:
    """The emulator's state URL for this destination, or SandboxInspectError."""
    spec = _spec(destination)
    sandbox = spec.sandbox
    if not destination_is_sandbox(destination):
        raise SandboxInspectError(
            "This destination talks to the real platform, not to a sandbox: there is no "
            "sandbox state to show."
        )
    base = (getattr(destination, sandbox.url_setting) or "").rstrip("/")
    if not base.endswith(sandbox.url_suffix):
        setting = next(s.label for s in spec.settings if s.name == sandbox.url_setting)
        raise SandboxInspectError(
            f"The {setting} {base} does not end in '{sandbox.url_suffix}', so it is not a "
            "CohortSync sandbox emulator (a proxy, perhaps): there is no sandbox state to show."
        )
    root = base[: -len(sandbox.url_suffix)]
    return f"{root}{sandbox.state_prefix}/_sandbox/state?limit={int(limit)}"


def sandbox_state_fetch(*, destination: Destination, limit: int = STATE_ROW_LIMIT) -> SandboxSnapshot:
    """GET the emulator's state and shape it; never raises (errors go in `.error`)."""
    try:
        spec = _spec(destination)
        url = sandbox_state_url(destination, limit=limit)
    except SandboxInspectError as exc:
        return SandboxSnapshot(url="", platform="", error=str(exc))
    snapshot = SandboxSnapshot(url=url, platform=spec.sandbox.platform)
    # Through the destinations' transport: the same URL policy, and no redirect followed
    # (a redirect to an internal URL would otherwise be fetched and rendered here).
    transport = HttpTransport(
        retry=RetryPolicy(max_attempts=1),
        max_concurrency=1,
        connect_timeout=FETCH_TIMEOUT[0],
        read_timeout=FETCH_TIMEOUT[1],
    )
    try:
        response = transport.request("GET", url)
    except TransientError as exc:
        if exc.status is None:
            snapshot.error = (
                f"The sandbox at {url.split('/_sandbox')[0]} did not answer. Start it with "
                "`python manage.py run_sandbox` (or check the host and port in the destination)."
            )
        else:
            snapshot.error = f"The sandbox answered HTTP {exc.status} instead of its state."
        return snapshot
    except DestinationError as exc:
        snapshot.error = exc.message
        return snapshot
    if response.status_code != 200:
        snapshot.error = (
            f"The sandbox answered HTTP {response.status_code} instead of its state; it may be "
            "an older emulator without the inspection endpoint."
        )
        return snapshot
    try:
        state = response.json()
    except ValueError:
        snapshot.error = "The sandbox answered with something that is not JSON."
        return snapshot
    if not isinstance(state, Mapping):
        snapshot.error = "The sandbox state is not a JSON object."
        return snapshot
    state = _scrub(state)
    highlighted = frozenset(destination.syncs.values_list("target_field", flat=True))
    if destination.key_column:
        highlighted |= {destination.key_column}
    snapshot.tables = spec.sandbox_tables()(state, highlighted)
    if not snapshot.tables:
        snapshot.error = "The sandbox has received nothing yet (its state is empty)."
    snapshot.raw_json = json.dumps(state, indent=2, sort_keys=True, default=str)[:200_000]
    return snapshot


def sfmc_tables(state: Mapping[str, Any], highlighted: frozenset[str] = frozenset()) -> list[Table]:
    tables: list[Table] = []
    data_extensions = state.get("data_extensions")
    if isinstance(data_extensions, Mapping):
        for key, de in data_extensions.items():
            tables.append(_data_extension_table(str(key), de, highlighted))
    elif data_extensions is not None:
        tables.append(generic_table("Data extensions", data_extensions))
    rest = {k: v for k, v in state.items() if k != "data_extensions"}
    tables.extend(_generic_tables(rest, {"attribute_sets": "Attribute sets", "contacts": "Contacts",
                                         "calls": "API calls received"}, highlighted))
    return tables


def marketo_tables(state: Mapping[str, Any], highlighted: frozenset[str] = frozenset()) -> list[Table]:
    tables: list[Table] = []
    if "leads" in state:
        total = state.get("lead_count")
        tables.append(
            generic_table(
                "Leads",
                state["leads"],
                total=total if isinstance(total, int) else None,
                highlighted=highlighted,
                first_columns=("id", "email"),
            )
        )
    rest = {k: v for k, v in state.items() if k not in ("leads", "lead_count")}
    tables.extend(_generic_tables(rest, {"fields": "Lead fields", "bulk_jobs": "Bulk import jobs",
                                         "calls": "API calls received"}, highlighted))
    return tables


def _generic_tables(
    state: Mapping[str, Any], titles: Mapping[str, str], highlighted: frozenset[str]
) -> list[Table]:
    ordered = [k for k in titles if k in state] + [k for k in state if k not in titles]
    tables = []
    for key in ordered:
        title = titles.get(key) or key.replace("_", " ").capitalize()
        tables.append(generic_table(title, state[key], highlighted=highlighted))
    return tables


def _data_extension_table(key: str, de: Any, highlighted: frozenset[str]) -> Table:
    if not isinstance(de, Mapping):
        return generic_table(f"Data extension {key}", de)
    name = de.get("name") or key
    field_names = [_field_name(f) for f in de.get("fields") or [] if _field_name(f)]
    rows = de.get("rows") or []
    row_count = de.get("row_count")
    table = generic_table(
        f"Data extension {name}" + (f" (external key {key})" if name != key else ""),
        rows,
        total=row_count if isinstance(row_count, int) else None,
        highlighted=highlighted,
        first_columns=tuple(field_names),
    )
    if not table.rows and field_names:
        return Table(title=table.title, columns=field_names, rows=[], total=table.total,
                     highlighted=table.highlighted, note="No rows yet.")
    return table


def _field_name(value: Any) -> str:
    if isinstance(value, Mapping):
        return str(value.get("name") or value.get("Name") or "")
    return str(value) if value is not None else ""


def generic_table(
    title: str,
    value: Any,
    *,
    total: int | None = None,
    highlighted: Iterable[str] = (),
    first_columns: tuple[str, ...] = (),
) -> Table:
    """Turn any JSON value into a table: list of objects, object of objects, or key/value."""
    columns: list[str] = list(first_columns)
    rows: list[list[str]] = []
    if isinstance(value, list):
        if all(isinstance(item, Mapping) for item in value):
            for item in value:
                columns.extend(k for k in map(str, item) if k not in columns)
            rows = [[_cell(item.get(c, _MISSING)) for c in columns] for item in value]
        else:
            columns = ["value"]
            rows = [[_cell(item)] for item in value]
    elif isinstance(value, Mapping):
        if value and all(isinstance(item, Mapping) for item in value.values()):
            columns = ["key", *[c for c in columns if c != "key"]]
            for item in value.values():
                columns.extend(k for k in map(str, item) if k not in columns)
            rows = [[str(k)] + [_cell(item.get(c, _MISSING)) for c in columns[1:]]
                    for k, item in value.items()]
        else:
            columns = ["name", "value"]
            rows = [[name, _cell(v)] for name, v in _flatten(value)]
    else:
        columns = ["value"]
        rows = [[_cell(value)]]
    present = frozenset(columns) & frozenset(highlighted)
    return Table(title=title, columns=columns, rows=rows, total=total, highlighted=present,
                 note="" if rows else "Nothing yet.")


def _flatten(value: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """{"calls": {"total": 3}} -> [("calls › total", 3)], so counters read as a list."""
    items: list[tuple[str, Any]] = []
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping) and item:
            items.extend(_flatten(item, f"{name} › "))
        else:
            items.append((name, item))
    return items


_HIDDEN_KEY_PARTS = ("token", "secret", "password", "authorization")


def _scrub(value: Any) -> Any:
    """Hide anything credential-like an emulator might report (issued tokens, say)."""
    if isinstance(value, Mapping):
        # Only string values: counters such as "POST /v2/token": 3 are worth seeing.
        return {
            k: "[hidden]"
            if isinstance(v, str) and any(p in str(k).lower() for p in _HIDDEN_KEY_PARTS)
            else _scrub(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    return value


class _Missing:
    pass


_MISSING = _Missing()


def _cell(value: Any) -> str:
    if isinstance(value, _Missing) or value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list):
        text = json.dumps(value, sort_keys=True, default=str)
    else:
        text = str(value)
    return text if len(text) <= MAX_CELL_LENGTH else text[: MAX_CELL_LENGTH - 1] + "…"
