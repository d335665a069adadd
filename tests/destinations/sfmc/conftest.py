"""Fixtures for the SFMC connector tests: configs pointing at the sandbox, a sleep recorder."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.core.cache import cache

from destinations.base import DestinationConfig, SyncTarget
from destinations.sandbox.server import SandboxServer
from destinations.sandbox.sfmc import SfmcSandbox
from destinations.sfmc_contacts.connector import ContactsConnector
from destinations.sfmc_data_extension.connector import DataExtensionConnector
from tests.destinations.configs import config_of

SECRET = "sandbox-client-secret"
OFFICIAL_AUTH = "https://mcexample123.auth.marketingcloudapis.com"
OFFICIAL_REST = "https://mcexample123.rest.marketingcloudapis.com/"


class SleepRecorder:
    """Stands in for time.sleep: records the waits instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> None:
    cache.clear()


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def sfmc(sandbox: SandboxServer) -> SfmcSandbox:
    return sandbox.sandboxes.sfmc


def _config(kind: str, values: dict[str, Any]) -> DestinationConfig:
    if kind == "sfmc_contacts":
        values.pop("data_extension_key", None)
    else:
        values.pop("attribute_set", None)
    return config_of(kind, **values)


def sandbox_config(sandbox: SandboxServer, kind: str = "sfmc_data_extension", **overrides: Any) -> DestinationConfig:
    values: dict[str, Any] = {
        "name": "SFMC sandbox",
        "client_id": "sandbox-client-id",
        "client_secret": SECRET,
        "auth_base_url": sandbox.sfmc_auth_base_url,
        "data_extension_key": "CohortSync_Demo",
        "attribute_set": "Email Demographics",
        "options": {"requests_per_second": 1000},
    }
    values.update(overrides)
    return _config(kind, values)


def official_config(kind: str = "sfmc_data_extension", **overrides: Any) -> DestinationConfig:
    values: dict[str, Any] = {
        "name": "SFMC", "client_id": "cid", "client_secret": "very-secret-value",
        "subdomain": "mcexample123", "data_extension_key": "Cohorts", "options": {"requests_per_second": 1000},
    }
    values.update(overrides)
    return _config(kind, values)


@pytest.fixture
def make_de(sandbox: SandboxServer, sleeps: SleepRecorder) -> Callable[..., DataExtensionConnector]:
    def make(**overrides: Any) -> DataExtensionConnector:
        return DataExtensionConnector(sandbox_config(sandbox, **overrides), sleep=sleeps)

    return make


@pytest.fixture
def make_contacts(sandbox: SandboxServer, sleeps: SleepRecorder) -> Callable[..., ContactsConnector]:
    def make(**overrides: Any) -> ContactsConnector:
        return ContactsConnector(sandbox_config(sandbox, kind="sfmc_contacts", **overrides), sleep=sleeps)

    return make


def target(field: str = "In_Demo_Cohort", **options: Any) -> SyncTarget:
    return SyncTarget(field=field, identity_property="$email", options=options)
