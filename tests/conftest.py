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
