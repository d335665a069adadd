"""The SFMC emulator's data extension model: columns, typed values, row upserts.

SFMC's rules as the emulator applies them: column names match case-insensitively, unknown
columns are ignored, primary keys compare case-insensitively, typed columns validate their
values (a bad one rejects the row), and non-nullable columns must have a value on insert.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

DEFAULT_REJECT_MESSAGE = (
    "Email: The value for column [Email] is not a valid email address. Parse error [InvalidEmailAddress]"
)
DEADLOCK_MESSAGE = (
    "Transaction (Process ID 61) was deadlocked on lock resources with another process and has "
    "been chosen as the deadlock victim. Rerun the transaction."
)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class RowError(Exception):
    """This row is rejected (10006 in a rowset, an Error item in async results)."""


class RequestError(Exception):
    """The whole request is malformed for this data extension."""


class DataExtension:
    def __init__(self, key: str, name: str, fields: list[Mapping[str, Any]]) -> None:
        self.id = str(uuid.uuid4())
        self.key = key
        self.name = name
        self.fields: list[dict[str, Any]] = []
        self.pending: list[list[Any]] = []  # [field, reads left before it appears]
        self.rows: dict[tuple[str, ...], dict[str, Any]] = {}
        for spec in fields:
            self.add_field(spec)

    def add_field(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        is_pk = bool(spec.get("isPrimaryKey", False))
        kind = str(spec.get("type", "Text"))
        field = {
            "name": str(spec["name"]), "type": kind, "isPrimaryKey": is_pk,
            "isNullable": bool(spec.get("isNullable", not is_pk)),
            "length": spec.get("length", 254 if kind in ("Text", "EmailAddress") else None),
            "ordinal": len(self.fields), "mask": 0,
        }
        self.fields.append(field)
        return field

    def field(self, name: str) -> dict[str, Any] | None:
        lowered = str(name).lower()
        return next((f for f in self.fields if f["name"].lower() == lowered), None)

    @property
    def primary_keys(self) -> list[dict[str, Any]]:
        return [f for f in self.fields if f["isPrimaryKey"]]

    def write_row(self, row: Mapping[str, Any], *, rejected: Mapping[str, Any], insert_only: bool = False,
                  keys: Mapping[str, Any] | None = None) -> None:
        """Upsert one row; raises RowError (this row) or RequestError (the request).

        `rejected` maps identities (first primary key value) to the message their row fails with.
        """
        if not self.primary_keys:
            raise RowError("This Data Extension does not have any primary keys defined.")
        if keys is not None:
            for name in keys:
                if self.field(name) is None or not self.field(name)["isPrimaryKey"]:  # type: ignore[index]
                    raise RequestError(f"Primary key '{str(name).lower()}' does not exist.")
        merged = {**row, **(keys or {})}
        known = {self.field(k)["name"]: v for k, v in merged.items() if self.field(k) is not None}  # type: ignore[index]
        pk = tuple(str(known.get(f["name"]) or "").lower() for f in self.primary_keys)
        if not all(pk):
            raise RowError("Cannot locate the existing record. Required keys are missing.")
        if keys is not None and len(known) <= len(self.primary_keys):
            raise RequestError("At least one existing field is required in the values property")
        identity = str(known[self.primary_keys[0]["name"]])
        if identity in rejected:
            raise RowError(str(rejected[identity] or DEFAULT_REJECT_MESSAGE))
        values = {name: coerce(self.field(name), value) for name, value in known.items()}  # type: ignore[arg-type]
        existing = self.rows.get(pk)
        if existing is not None and insert_only:
            raise RowError("Violation of PRIMARY KEY constraint. Cannot insert duplicate key.")
        if existing is None:
            for field in self.fields:
                if not field["isNullable"] and values.get(field["name"]) is None:
                    raise RowError(f"Column [{field['name']}] does not allow null value.")
            self.rows[pk] = values
        else:
            existing.update(values)


def coerce(field: Mapping[str, Any], value: Any) -> Any:
    name, kind = field["name"], field["type"]
    if value is None or value == "":
        if not field["isNullable"]:
            raise RowError(f"Column [{name}] does not allow null value.")
        return None
    if kind == "Boolean":
        if isinstance(value, bool):
            return value
        if str(value).strip().lower() in ("true", "1"):
            return True
        if str(value).strip().lower() in ("false", "0"):
            return False
        raise RowError(f"{name}: The value for column [{name}] is not a valid boolean.")
    if kind in ("Number", "Decimal"):
        try:
            return float(value) if kind == "Decimal" else int(value)
        except (TypeError, ValueError):
            raise RowError(f"{name}: The value for column [{name}] is not a valid number.") from None
    if kind == "Date":
        try:
            datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise RowError(f"{name}: The value for column [{name}] is not a valid date.") from None
        return str(value)
    if kind == "EmailAddress" and not EMAIL_RE.match(str(value)):
        raise RowError(DEFAULT_REJECT_MESSAGE.replace("Email", name).replace("[Email]", f"[{name}]"))
    text = str(value)
    if field.get("length") and len(text) > int(field["length"]):
        raise RowError(f"{name}: The value for column [{name}] is longer than {field['length']} characters.")
    return text
