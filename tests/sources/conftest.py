"""Application databases for source tests: a real PostgreSQL database and a real MariaDB
database (each created for the test and dropped after it), and a SQLite file.

They stand in for the customer's own database. Neither server being reachable is a test
failure, never a skip: CI (.ci/run) starts both.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from sources.models import Source, SourceKind
from tests.factories import SourceFactory

POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}

# One users table per engine, the same columns: text id, NULLable text, a decimal, a
# timestamp with a time zone (or MariaDB's TIMESTAMP, stored in UTC), an increasing version.
USERS_TABLE = {
    SourceKind.POSTGRESQL: "CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT, plan TEXT, "
    "amount NUMERIC(10, 2), seen_at TIMESTAMPTZ, signup DATE, version BIGINT NOT NULL)",
    SourceKind.MYSQL: "CREATE TABLE users (id VARCHAR(64) PRIMARY KEY, email VARCHAR(255), "
    "plan VARCHAR(32), amount DECIMAL(10, 2), seen_at TIMESTAMP NULL, signup DATE, "
    "version BIGINT NOT NULL)",
    SourceKind.SQLITE: "CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT, plan TEXT, "
    "amount NUMERIC, seen_at TEXT, signup TEXT, version INTEGER NOT NULL)",
}


class AppDatabase:
    """The application's database: the test writes to it with its own connection."""

    def __init__(self, kind: str, url: str, connect: Any, placeholder: str = "%s") -> None:
        self.kind = kind
        self.url = url
        self._connect = connect
        self._placeholder = placeholder

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        connection = self._connect()
        try:
            cursor = connection.cursor()
            cursor.execute(sql.replace("%s", self._placeholder), tuple(params))
            connection.commit()
        finally:
            connection.close()

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        connection = self._connect()
        try:
            cursor = connection.cursor()
            cursor.execute(sql.replace("%s", self._placeholder), tuple(params))
            return [tuple(row) for row in cursor.fetchall()]
        finally:
            connection.close()

    def create_users(self) -> None:
        self.execute(USERS_TABLE[self.kind])

    def insert_user(self, user_id: str, *, email: str | None = None, plan: str | None = "free",
                    amount: str | None = None, seen_at: str | None = None, signup: str | None = None,
                    version: int = 1) -> None:
        self.execute(
            "INSERT INTO users (id, email, plan, amount, seen_at, signup, version) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [user_id, email, plan, amount, seen_at, signup, version],
        )

    def source(self, **fields: Any) -> Source:
        return SourceFactory(**{"kind": self.kind, "url": self.url, **fields})


def _postgres() -> Iterator[AppDatabase]:
    name = f"cs_src_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        # The application's server talks in another time zone: imports must not care.
        admin.execute(f"ALTER DATABASE \"{name}\" SET timezone TO 'America/New_York'")
    url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    try:
        yield AppDatabase(SourceKind.POSTGRESQL, url, lambda: psycopg.connect(url))
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _mariadb() -> Iterator[AppDatabase]:
    name = f"cs_src_{uuid.uuid4().hex[:12]}"
    admin = pymysql.connect(**MARIADB)
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    finally:
        admin.close()

    def connect() -> Any:
        # The application writes in its own time zone: TIMESTAMP values are stored in UTC.
        return pymysql.connect(**MARIADB, database=name, init_command="SET time_zone = '+05:00'")

    try:
        yield AppDatabase(SourceKind.MYSQL, f"mysql://root@127.0.0.1:3306/{name}", connect)
    finally:
        admin = pymysql.connect(**MARIADB)
        try:
            with admin.cursor() as cursor:
                cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            admin.close()


def _sqlite(path: Path) -> Iterator[AppDatabase]:
    sqlite3.connect(path).close()
    yield AppDatabase(SourceKind.SQLITE, f"sqlite:///{path}", lambda: sqlite3.connect(path), placeholder="?")


@pytest.fixture
def postgres_app_db() -> Iterator[AppDatabase]:
    yield from _postgres()


@pytest.fixture
def mariadb_app_db() -> Iterator[AppDatabase]:
    yield from _mariadb()


@pytest.fixture
def sqlite_app_db(tmp_path: Path) -> Iterator[AppDatabase]:
    yield from _sqlite(tmp_path / "app.sqlite3")


@pytest.fixture(params=[SourceKind.POSTGRESQL, SourceKind.MYSQL, SourceKind.SQLITE])
def app_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AppDatabase]:
    """Each test using it runs once per engine."""
    if request.param == SourceKind.POSTGRESQL:
        yield from _postgres()
    elif request.param == SourceKind.MYSQL:
        yield from _mariadb()
    else:
        yield from _sqlite(tmp_path / "app.sqlite3")
