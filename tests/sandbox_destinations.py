"""Destinations of each kind pointing at the sandbox emulators (tests/conftest.py's
`sandbox` fixture), for tests that go through the real connectors over HTTP."""

from __future__ import annotations

from typing import Any

from destinations.models import Destination
from destinations.sandbox.server import SandboxServer
from tests.factories import DestinationFactory

SANDBOX_ID = "sandbox-client-id"
SANDBOX_SECRET = "sandbox-client-secret"
DE_KEY = "CohortSync_Demo"


def sandbox_destination(sandbox: SandboxServer, kind: str, **overrides: Any) -> Destination:
    """A saved destination of `kind` that the emulators answer."""
    common: dict[str, Any] = {"client_id": SANDBOX_ID, "client_secret": SANDBOX_SECRET}
    if kind == "marketo":
        values = {"marketo": True, "base_url": sandbox.marketo_base_url}
    elif kind == "sfmc_contacts":
        values = {"contacts": True, "auth_base_url": sandbox.sfmc_auth_base_url}
    else:
        values = {"auth_base_url": sandbox.sfmc_auth_base_url, "data_extension_key": DE_KEY,
                  "key_column": "SubscriberKey"}
    return DestinationFactory(**{**common, **values, **overrides})
