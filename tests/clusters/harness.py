"""Hosts for the several-clusters tests: a PostgreSQL database of their own, shared by
`manage.py` processes that each start with their own environment and directory, as on
separate hosts.

These tests drive CohortSync only through its command line and read the shared database
with plain SQL, so they run the same whether pytest's own database is SQLite or PostgreSQL.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from cryptography.fernet import Fernet
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
MANAGE = ROOT / "manage.py"
REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_SERVER_URL = "postgres://postgres@127.0.0.1:5432/postgres"
# Shared by every host, as production requires: tasks are signed with the first, secrets
# encrypted with the second.
SECRET_KEY = f"clusters-test-{uuid.uuid4().hex}-{uuid.uuid4().hex}"
FIELD_ENCRYPTION_KEYS = Fernet.generate_key().decode()

T = TypeVar("T")


def server_url() -> str:
    """The PostgreSQL server to create databases on: pytest's own when it is PostgreSQL."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        url = os.environ.get("COHORTSYNC_TEST_POSTGRES_URL", DEFAULT_SERVER_URL)
    return urlunsplit(urlsplit(url)._replace(path="/postgres", query=""))


def database_url(name: str) -> str:
    return urlunsplit(urlsplit(server_url())._replace(path=f"/{name}"))


def _admin(statement: sql.Composable) -> None:
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(statement)


def database_create(name: str, *, template: str | None = None) -> None:
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
    _admin(statement)


def database_drop(name: str) -> None:
    _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@dataclass
class SharedDatabase:
    """The database every host shares; read with plain SQL."""

    name: str

    @property
    def url(self) -> str:
        return database_url(self.name)

    def rows(self, query: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return list(conn.execute(query, params).fetchall())

    def value(self, query: str, params: Sequence[Any] = ()) -> Any:
        rows = self.rows(query, params)
        return rows[0][0] if rows else None

    def execute(self, query: str, params: Sequence[Any] = ()) -> int:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(query, params).rowcount


def redis_keys_delete(prefix: str) -> None:
    import redis

    with redis.Redis.from_url(REDIS_URL) as client:
        keys = [*client.scan_iter(f"{prefix}:*"), *client.scan_iter(f"django_q:{prefix}:*")]
        if keys:
            client.delete(*keys)


@dataclass
class Process:
    """A long-lived `manage.py` process in a session (process group) of its own."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole group: the workers die with their cluster, as when a host dies."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop(self, timeout: float = 30.0) -> None:
        """As systemd's KillMode=mixed: SIGTERM to the main process, then SIGKILL to what is left."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


@dataclass
class Host:
    """One machine's view: its own directory and environment, the shared database and broker."""

    name: str
    directory: Path
    env: dict[str, str]
    processes: list[Process] = field(default_factory=list)

    def manage(self, *args: str, stdin: str | None = None, timeout: float = 180.0) -> str:
        result = subprocess.run(
            [sys.executable, str(MANAGE), *args], env=self.env, cwd=self.directory, input=stdin,
            capture_output=True, text=True, timeout=timeout,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"{self.name}: manage.py {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def start(self, *args: str) -> Process:
        """A long-lived `manage.py` command (qcluster, run_sandbox...)."""
        return self.start_command([sys.executable, str(MANAGE), *args], label=args[0])

    def start_command(self, argv: Sequence[str], *, label: str, cwd: Path | None = None) -> Process:
        log_path = self.directory / f"{label}.log"
        with open(log_path, "ab") as log:
            popen = subprocess.Popen(
                list(argv), env=self.env, cwd=cwd or self.directory,
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        process = Process(name=f"{self.name}/{label}", popen=popen, log_path=log_path)
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()


def host_environment(
    *, directory: Path, database: SharedDatabase, broker: str, queue_name: str, sandbox_port: int,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(directory),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        # Explicit, so a developer's .env cannot turn DEBUG on.
        "DEBUG": "false",
        "SECRET_KEY": SECRET_KEY,
        "FIELD_ENCRYPTION_KEYS": FIELD_ENCRYPTION_KEYS,
        "SECURE_COOKIES": "false",
        "DATABASE_URL": database.url,
        "COHORTSYNC_VAR_DIR": str(directory / "var"),
        "COHORTSYNC_ALLOWED_API_HOSTS": f"127.0.0.1:{sandbox_port}",
        "TASK_QUEUE_NAME": queue_name,
        "Q_WORKERS": "2",
        "LOG_LEVEL": "INFO",
    }
    if broker == "redis":
        # Shared with other test runs: the queue's name prefixes the broker's and the cache's keys.
        env["REDIS_URL"] = REDIS_URL
    return {**env, **(extra or {})}


@contextmanager
def hosts(
    tmp_path: Path, *, count: int, database: SharedDatabase, broker: str, sandbox_port: int,
    extra: dict[str, str] | None = None,
) -> Iterator[list[Host]]:
    queue_name = f"cs-clusters-{uuid.uuid4().hex[:12]}"
    made: list[Host] = []
    for index in range(count):
        directory = tmp_path / f"host-{index + 1}"
        directory.mkdir()
        env = host_environment(directory=directory, database=database, broker=broker, queue_name=queue_name,
                               sandbox_port=sandbox_port, extra={**(extra or {}), "HOSTNAME": directory.name})
        made.append(Host(name=directory.name, directory=directory, env=env))
    try:
        yield made
    finally:
        for host in made:
            host.stop_all()
        if broker == "redis":
            redis_keys_delete(queue_name)


def wait_for(predicate: Callable[[], T], *, timeout: float, what: str, hosts: Sequence[Host] = (),
             interval: float = 0.5) -> T:
    """Poll until `predicate` returns something truthy; on timeout, fail with the hosts' logs."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = "\n".join(
                f"--- {p.name} (alive: {p.alive()}) ---\n{p.log()[-4000:]}" for h in hosts for p in h.processes
            )
            raise AssertionError(f"Timed out after {timeout:.0f} s waiting for {what}.\n{logs}")
        time.sleep(interval)


PROCESSING = re.compile(r"processing \S+ '(?P<func>[\w.]+)'(?: \[(?P<group>[^\]]+)\])?")


def tasks_processed(process: Process) -> list[tuple[str, str]]:
    """(function, group) of every task this cluster's workers started, from its log."""
    return [(m["func"], m["group"] or "") for m in PROCESSING.finditer(process.log())]
