"""Fixtures for the Marketo client, connector and emulator tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache

from destinations.base import DestinationConfig, SyncTarget
from destinations.marketo.connector import MarketoConnector
from destinations.sandbox.marketo import MarketoSandbox
from destinations.sandbox.server import SandboxServer
from tests.destinations.configs import config_of

SANDBOX_ID = "sandbox-client-id"
SANDBOX_SECRET = "sandbox-client-secret"


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> None:
    # Tokens live in the (process-wide) Django cache; each test starts without one.
    cache.clear()


@pytest.fixture
def sleeps() -> list[float]:
    """Every wait the code under test asked for, instead of waiting."""
    return []


@pytest.fixture
def marketo(sandbox: SandboxServer) -> MarketoSandbox:
    return sandbox.sandboxes.marketo


def config_for(base_url: str, *, client_id: str = SANDBOX_ID, client_secret: str = SANDBOX_SECRET,
               **options: Any) -> DestinationConfig:
    return config_of("marketo", name="Marketo sandbox", client_id=client_id, client_secret=client_secret,
                     base_url=base_url, options=options)


@pytest.fixture
def make_connector(sandbox: SandboxServer, sleeps: list[float]) -> Callable[..., MarketoConnector]:
    def make(*, base_url: str | None = None, **kwargs: Any) -> MarketoConnector:
        config = config_for(base_url or sandbox.marketo_base_url, **kwargs)
        return MarketoConnector(config, sleep=sleeps.append)

    return make


@pytest.fixture
def connector(make_connector: Callable[..., MarketoConnector]) -> MarketoConnector:
    return make_connector()


def target(field: str = "cohortProUsers") -> SyncTarget:
    return SyncTarget(field=field, identity_property="$email")
