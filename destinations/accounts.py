"""Which platform account a destination writes to, and where its field names live.

Two destination records may point at one account (a copy made for another team, a second
record for a different data extension). Anything that must hold per account rather than
per record (one field per sync, above all) asks these functions, never the record's id.
Each kind's spec says how (KindSpec.account_key, field_scope, field_scope_label); these
read plain settings (a Destination row, a DestinationConfig or apply's planned values), so
apply can ask before anything is saved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from destinations.kinds import kind_spec


@dataclass(frozen=True)
class KindSettings:
    """A destination's kind and its kind settings, by name."""

    kind: str
    settings: Mapping[str, str]

    @classmethod
    def of(cls, destination: Any) -> KindSettings:
        """From a KindSettings, a DestinationConfig (its `settings` mapping) or a Destination
        row (the settings as attributes)."""
        if isinstance(destination, KindSettings):
            return destination
        names = kind_spec(destination.kind).setting_names
        settings = getattr(destination, "settings", None)
        if isinstance(settings, Mapping):
            return cls(destination.kind, {name: str(settings.get(name) or "") for name in names})
        return cls(destination.kind, {name: str(getattr(destination, name, "") or "") for name in names})

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> KindSettings:
        """From planned values: the kind and its settings in one mapping."""
        names = kind_spec(values["kind"]).setting_names
        return cls(values["kind"], {name: str(values.get(name) or "") for name in names})


def destination_account_key(destination: Any) -> str:
    """The account a destination writes to: equal keys mean one account, whatever the
    records are called."""
    settings = KindSettings.of(destination)
    return kind_spec(settings.kind).account_key(settings.settings)


def destination_field_scope(destination: Any) -> str:
    """Where the destination's field names live (a data extension or an attribute set of an
    SFMC account, a Marketo instance's lead fields or its static lists): a field name means
    the same thing wherever the scope is equal (names compare case-insensitively)."""
    settings = KindSettings.of(destination)
    return kind_spec(settings.kind).field_scope(settings.settings)


def destination_field_scope_label(destination: Any) -> str:
    """The scope in words, for messages: "the data extension 'COHORTS_DE' of the SFMC
    account mc123 (MID 514009877)"."""
    settings = KindSettings.of(destination)
    return kind_spec(settings.kind).field_scope_label(settings.settings)
