"""Fixtures shared by every test package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from destinations.sandbox.server import SandboxServer


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    """The SFMC and Marketo emulators, served over real HTTP on a free loopback port."""
    server = SandboxServer(host="127.0.0.1", port=0).start()
    yield server
    server.stop()


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxServer:
    """A sandbox server with fresh emulator state for this test."""
    sandbox_server.sandboxes.reset()
    return sandbox_server


@pytest.fixture(autouse=True)
def _api_budgets_reset() -> Iterator[None]:
    """Each test starts with empty API budgets in the process's memory store (the store of
    the test settings), as today's windows and quotas would be on a fresh installation."""
    from destinations.budget import memory_budget_store
    from destinations.budget_stores import database_thread

    memory_budget_store().clear()
    yield
    # The database store's own connection, if a test used it: closed before the test
    # database is dropped.
    database_thread.close()
