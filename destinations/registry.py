"""Build the connector for a Destination row, from its kind's spec (destinations.kinds)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from destinations.base import Connector, DestinationConfig
from destinations.budget import account_budget_options
from destinations.errors import ConfigurationError
from destinations.kinds import kind_spec
from destinations.kindspec import UnknownKindError
from destinations.models import Destination

ConnectorFactory = Callable[[DestinationConfig], Connector]
_override: ConnectorFactory | None = None


def destination_config(destination: Destination) -> DestinationConfig:
    """The destination's kind settings and its options, parsed once (ConfigurationError
    when the kind is unknown or the stored options no longer pass), each budget option the
    smallest among the records on the destination's account (destinations.budget)."""
    try:
        spec = kind_spec(destination.kind)
    except UnknownKindError as exc:
        raise ConfigurationError(
            f"{exc} The destination '{destination.name}' cannot be used by this version of "
            "CohortSync.", code="unknown_kind",
        ) from None
    return DestinationConfig(
        kind=destination.kind,
        name=destination.name,
        client_id=destination.client_id,
        client_secret=destination.client_secret,
        settings={name: getattr(destination, name) or "" for name in spec.setting_names},
        # Records sharing the account share its budget: the smaller of each budget option.
        options=account_budget_options(destination, spec.options.of(destination.options or {})),
    )


def connector_build(config: DestinationConfig) -> Connector:
    """The kind's connector for `config` (or the test override's)."""
    if _override is not None:
        return _override(config)
    return kind_spec(config.kind).connector_class()(config)


def connector_for(destination: Destination) -> Connector:
    return connector_build(destination_config(destination))


@contextmanager
def override_connector(factory: ConnectorFactory) -> Iterator[None]:
    """Tests: make connector_for() return factory(config) for every destination."""
    global _override
    previous, _override = _override, factory
    try:
        yield
    finally:
        _override = previous
