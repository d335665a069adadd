"""A migrated PostgreSQL template, cloned into a fresh database for every several-clusters test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.clusters.harness import (
    Host,
    SharedDatabase,
    database_create,
    database_drop,
    host_environment,
)


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    name = f"cs_clusters_{uuid.uuid4().hex[:10]}_template"
    database_create(name)
    try:
        directory = tmp_path_factory.mktemp("migrate")
        env = host_environment(directory=directory, database=SharedDatabase(name), broker="orm",
                               queue_name="migrate", sandbox_port=0)
        Host(name="migrate", directory=directory, env=env).manage("migrate", "--no-input")
        yield name
    finally:
        database_drop(name)


@pytest.fixture
def shared_database(migrated_template: str) -> Iterator[SharedDatabase]:
    """A database of its own on the PostgreSQL server, whatever pytest's database is."""
    name = f"cs_clusters_{uuid.uuid4().hex[:10]}"
    database_create(name, template=migrated_template)
    try:
        yield SharedDatabase(name)
    finally:
        database_drop(name)
