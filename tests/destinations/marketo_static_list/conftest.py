"""Fixtures for the static list connector and emulator tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache

from destinations.base import SyncTarget
from destinations.marketo_static_list.connector import StaticListConnector
from destinations.sandbox.marketo import MarketoSandbox
from destinations.sandbox.server import SandboxServer
from tests.destinations.configs import config_of

SANDBOX_ID = "sandbox-client-id"
SANDBOX_SECRET = "sandbox-client-secret"
LIST = "Pro users"


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> None:
    cache.clear()


@pytest.fixture
def marketo(sandbox: SandboxServer) -> MarketoSandbox:
    return sandbox.sandboxes.marketo


@pytest.fixture
def make_connector(sandbox: SandboxServer) -> Callable[..., StaticListConnector]:
    def make(*, base_url: str | None = None, **options: Any) -> StaticListConnector:
        config = config_of("marketo_static_list", name="Marketo lists", client_id=SANDBOX_ID,
                           client_secret=SANDBOX_SECRET, base_url=base_url or sandbox.marketo_base_url,
                           options=options)
        return StaticListConnector(config, sleep=lambda seconds: None)

    return make


@pytest.fixture
def connector(make_connector: Callable[..., StaticListConnector]) -> StaticListConnector:
    return make_connector()


def target(field: str = LIST) -> SyncTarget:
    return SyncTarget(field=field, identity_property="$email")
