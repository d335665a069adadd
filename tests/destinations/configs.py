"""Connector configs for tests, written flat as a Destination row would have them."""

from __future__ import annotations

from typing import Any

from destinations.base import DestinationConfig
from destinations.kinds import kind_spec


def config_of(
    kind: str, *, name: str, client_id: str, client_secret: str, options: Any = None, **settings: str
) -> DestinationConfig:
    """A DestinationConfig with `settings` checked against the kind's (a typo fails loudly)
    and `options` left raw (the connector parses them)."""
    unknown = set(settings) - set(kind_spec(kind).setting_names)
    if unknown:
        raise TypeError(f"{kind} has no setting(s) {sorted(unknown)}")
    return DestinationConfig(
        kind=kind, name=name, client_id=client_id, client_secret=client_secret,
        settings=settings, options=dict(options or {}),
    )
