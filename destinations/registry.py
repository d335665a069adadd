"""Build the connector for a Destination row (the only place that maps kinds to classes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.utils.module_loading import import_string

from destinations.base import Connector, DestinationConfig
from destinations.models import Destination, DestinationKind

CONNECTOR_CLASSES: dict[str, str] = {
    DestinationKind.SFMC_DATA_EXTENSION: "destinations.sfmc.data_extension.DataExtensionConnector",
    DestinationKind.SFMC_CONTACTS: "destinations.sfmc.contacts.ContactsConnector",
    DestinationKind.MARKETO: "destinations.marketo.connector.MarketoConnector",
}

ConnectorFactory = Callable[[DestinationConfig], Connector]
_override: ConnectorFactory | None = None


def destination_config(destination: Destination) -> DestinationConfig:
    return DestinationConfig(
        kind=destination.kind,
        name=destination.name,
        client_id=destination.client_id,
        client_secret=destination.client_secret,
        subdomain=destination.subdomain,
        account_id=destination.account_id,
        auth_base_url=destination.auth_base_url,
        data_extension_key=destination.data_extension_key,
        key_column=destination.key_column,
        attribute_set=destination.attribute_set,
        base_url=destination.base_url,
        options=dict(destination.options or {}),
    )


def connector_for(destination: Destination) -> Connector:
    config = destination_config(destination)
    if _override is not None:
        return _override(config)
    connector_class = import_string(CONNECTOR_CLASSES[destination.kind])
    return connector_class(config)


@contextmanager
def override_connector(factory: ConnectorFactory) -> Iterator[None]:
    """Tests: make connector_for() return factory(config) for every destination."""
    global _override
    previous, _override = _override, factory
    try:
        yield
    finally:
        _override = previous
