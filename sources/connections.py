"""Read-only sessions on a source database: the one module that talks to sources.

SQLAlchemy Core gives one API over the three drivers (psycopg for PostgreSQL, PyMySQL for
MySQL/MariaDB, the standard sqlite3), parses URLs and streams results with server-side
cursors (stream_results + yield_per), so a query of millions of rows never sits in memory.

Every session is read-only at the database level, whatever the statement check let
through:
* PostgreSQL: `default_transaction_read_only=on` as a startup option, plus a read-only
  transaction; `statement_timeout` (per statement, so per FETCH of a streamed query);
  `TimeZone=UTC`, so timestamps with a time zone come back in UTC.
* MySQL/MariaDB: `SET SESSION TRANSACTION READ ONLY`, then `START TRANSACTION READ ONLY`;
  `max_statement_time` (MariaDB, seconds) or `max_execution_time` (MySQL, milliseconds),
  which covers the whole streamed query; `time_zone = '+00:00'`.
* SQLite: the file is opened with `mode=ro` and `PRAGMA query_only`; SQLite has no
  statement timeout, so a progress handler interrupts a read that runs past it (measured
  from the start of each batch fetch).
Connections are not pooled: a source is read a few times an hour, and a fresh session
per read means no setting ever leaks from one read into the next.
"""

from __future__ import annotations

import sqlite3
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from destinations.encryption import SecretDecryptionError
from sources.models import SourceKind
from sources.statements import StatementRefused, read_statement_check

CONNECT_TIMEOUT_SECONDS = 10
DEFAULT_BATCH_SIZE = 5000
# SQLite's progress handler runs every this many virtual machine instructions.
SQLITE_PROGRESS_STEPS = 10_000

# URL schemes people write, and the kind they mean.
SCHEME_KINDS: dict[str, str] = {
    "postgres": SourceKind.POSTGRESQL,
    "postgresql": SourceKind.POSTGRESQL,
    "mysql": SourceKind.MYSQL,
    "mariadb": SourceKind.MYSQL,
    "sqlite": SourceKind.SQLITE,
}
# The driver CohortSync uses for each kind; a URL may name it, or no driver at all.
KIND_DRIVERS: dict[str, str] = {
    SourceKind.POSTGRESQL: "postgresql+psycopg",
    SourceKind.MYSQL: "mysql+pymysql",
    SourceKind.SQLITE: "sqlite+pysqlite",
}
ACCEPTED_DRIVERS = {
    SourceKind.POSTGRESQL: {"psycopg"},
    SourceKind.MYSQL: {"pymysql"},
    SourceKind.SQLITE: {"pysqlite"},
}


class SourceError(Exception):
    """A source could not be read; `message` is safe to show and to store."""

    def __init__(self, message: str, *, code: str = "source_error") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class SourceUrlError(SourceError):
    def __init__(self, message: str) -> None:
        super().__init__(message, code="invalid_url")


class SourceSettings(Protocol):
    """What a session needs to know about a source (sources.models.Source has it)."""

    name: str
    kind: str
    url: str
    password: str

    @property
    def statement_timeout_seconds(self) -> float: ...


# --- URLs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedSourceUrl:
    kind: str
    url: str  # without the password: safe to store in clear and to show
    password: str  # "" when the URL has none


def source_url_parse(raw: str) -> ParsedSourceUrl:
    """Split a source URL into its kind, the URL without password, and the password.

    Accepts postgres://, postgresql://, mysql://, mariadb:// and sqlite:///path, with or
    without CohortSync's driver (+psycopg, +pymysql, +pysqlite). Raises SourceUrlError.
    """
    text = (raw or "").strip()
    if not text:
        raise SourceUrlError("The URL is empty: e.g. postgres://reader@db.internal:5432/app.")
    try:
        url = make_url(text)
    except ArgumentError:
        raise SourceUrlError(
            "This is not a database URL: write it as postgres://user@host:5432/database, "
            "mysql://user@host:3306/database or sqlite:////absolute/path/app.db."
        ) from None
    scheme, _, driver = url.drivername.partition("+")
    kind = SCHEME_KINDS.get(scheme.lower())
    if kind is None:
        raise SourceUrlError(
            f"'{scheme}' databases are not supported: use postgres://, mysql:// (MariaDB too) "
            "or sqlite:///."
        )
    if driver and driver.lower() not in ACCEPTED_DRIVERS[kind]:
        raise SourceUrlError(
            f"CohortSync reads {SourceKind(kind).label} with its own driver: remove '+{driver}' "
            f"from the URL (e.g. {scheme}://...)."
        )
    if kind == SourceKind.SQLITE:
        if url.host or url.username or url.password:
            raise SourceUrlError(
                "A SQLite URL is a file path: sqlite:////absolute/path/app.db (four slashes) or "
                "sqlite:///relative/to/the/project.db."
            )
        if not url.database or url.database == ":memory:":
            raise SourceUrlError("A SQLite source needs a file: sqlite:////absolute/path/app.db.")
    elif not url.host:
        raise SourceUrlError(f"The URL names no host: e.g. {scheme}://user@db.internal/app.")
    clean = URL.create(
        scheme.lower(),
        username=url.username,
        host=url.host,
        port=url.port,
        database=url.database,
        query=url.query,
    )
    return ParsedSourceUrl(
        kind=kind, url=clean.render_as_string(hide_password=False), password=url.password or ""
    )


def sqlite_path(url: str) -> Path:
    """The file a sqlite:/// URL names; a relative path is relative to the project
    directory, so the web server and the task cluster read the same file."""
    database = make_url(url).database or ""
    path = Path(database)
    return path if path.is_absolute() else Path(settings.BASE_DIR) / path


# --- Sessions --------------------------------------------------------------------------------


@dataclass
class _Deadline:
    """SQLite's statement timeout: the progress handler interrupts past `at`."""

    seconds: float
    at: float = field(default=0.0)

    def restart(self) -> None:
        self.at = time.monotonic() + self.seconds

    def passed(self) -> bool:
        return bool(self.at) and time.monotonic() > self.at


def _engine(source: SourceSettings, deadline: _Deadline) -> Engine:
    kind = source.kind
    timeout = source.statement_timeout_seconds
    if kind == SourceKind.SQLITE:
        path = sqlite_path(source.url)
        if not path.is_file():
            raise SourceError(f"There is no SQLite database at {path}.", code="connection_failed")

        def connect() -> sqlite3.Connection:
            uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
            connection = sqlite3.connect(uri, uri=True, timeout=CONNECT_TIMEOUT_SECONDS)
            connection.execute("PRAGMA query_only = ON")
            connection.set_progress_handler(lambda: 1 if deadline.passed() else 0, SQLITE_PROGRESS_STEPS)
            return connection

        return create_engine("sqlite+pysqlite://", creator=connect, poolclass=NullPool)

    url = make_url(source.url).set(drivername=KIND_DRIVERS[kind])
    if source.password:
        url = url.set(password=source.password)
    if kind == SourceKind.POSTGRESQL:
        startup = (
            f"-c default_transaction_read_only=on -c statement_timeout={int(timeout * 1000)} "
            "-c TimeZone=UTC"
        )
        return create_engine(
            url,
            poolclass=NullPool,
            connect_args={
                "connect_timeout": CONNECT_TIMEOUT_SECONDS,
                "options": startup,
                "application_name": "cohortsync",
            },
        )
    engine = create_engine(
        url,
        poolclass=NullPool,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS, "charset": "utf8mb4"},
    )

    @event.listens_for(engine, "connect")
    def _read_only_session(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("SELECT VERSION()")
            version = str(cursor.fetchone()[0])
            if "mariadb" in version.lower():
                cursor.execute("SET SESSION max_statement_time = %s", (float(timeout),))
            else:
                cursor.execute("SET SESSION max_execution_time = %s", (int(timeout * 1000),))
            cursor.execute("SET SESSION time_zone = '+00:00'")
            cursor.execute("SET SESSION TRANSACTION READ ONLY")
        finally:
            cursor.close()

    return engine


class ReadOnlySession:
    """One connection in a read-only transaction; statements it runs are trusted SQL
    (checked by the callers, or CohortSync's own probes)."""

    def __init__(self, connection: Connection, kind: str, deadline: _Deadline) -> None:
        self.connection = connection
        self.kind = kind
        self._deadline = deadline

    def _driver_sql(self, sql: str) -> str:
        # psycopg and PyMySQL read %s placeholders (and %% for a literal %) as soon as the
        # statement has parameters, which SQLAlchemy always passes.
        if self.connection.dialect.paramstyle in ("format", "pyformat"):
            return sql.replace("%", "%%")
        return sql

    @property
    def placeholder(self) -> str:
        return "?" if self.connection.dialect.paramstyle == "qmark" else "%s"

    def quote(self, identifier: str) -> str:
        return self.connection.dialect.identifier_preparer.quote(identifier)

    def execute(self, sql: str, params: Sequence[Any] = (), *, tail: str = "") -> Any:
        """Run `sql` (plus `tail`, CohortSync's own SQL holding placeholders) streamed."""
        self._deadline.restart()
        return self.connection.execution_options(stream_results=True).exec_driver_sql(
            self._driver_sql(sql) + tail, tuple(params)
        )

    def fetch(self, result: Any, size: int) -> list[tuple[Any, ...]]:
        self._deadline.restart()
        return [tuple(row) for row in result.fetchmany(size)]

    def scalar(self, sql: str) -> Any:
        self._deadline.restart()
        return self.connection.exec_driver_sql(self._driver_sql(sql), ()).scalar()


@contextmanager
def source_session(source: SourceSettings) -> Iterator[ReadOnlySession]:
    """A read-only session on the source; every driver error becomes a SourceError."""
    deadline = _Deadline(seconds=source.statement_timeout_seconds)
    try:
        engine = _engine(source, deadline)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise SourceError(f"The source URL cannot be used: {exc}", code="invalid_url") from None
    except SecretDecryptionError as exc:  # the password, loaded (deferred) only now
        raise SourceError(str(exc), code="secret_unreadable") from None
    try:
        try:
            connection = engine.connect()
        except SQLAlchemyError as exc:
            raise _source_error(exc, source, connecting=True) from None
        try:
            if source.kind == SourceKind.MYSQL:
                connection.exec_driver_sql("START TRANSACTION READ ONLY")
            elif source.kind == SourceKind.POSTGRESQL:
                connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            yield ReadOnlySession(connection, source.kind, deadline)
        except SQLAlchemyError as exc:
            raise _source_error(exc, source) from None
        except sqlite3.Error as exc:  # raised by the driver outside SQLAlchemy's wrapping
            raise _source_error(exc, source) from None
        finally:
            try:
                connection.rollback()
                connection.close()
            except SQLAlchemyError:
                pass  # the connection is already gone; there is nothing to undo on a read
    finally:
        engine.dispose()


# --- Queries ---------------------------------------------------------------------------------


@dataclass
class QueryStream:
    columns: list[str]
    batches: Iterator[list[tuple[Any, ...]]]


@contextmanager
def source_query(
    source: SourceSettings,
    *,
    sql: str,
    incremental_column: str = "",
    since: Any = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[QueryStream]:
    """Check `sql` (exactly one SELECT), run it read-only and stream its rows in batches.

    With `incremental_column` and `since`, the query is wrapped, not edited: only rows whose
    column is at or past `since` are read (the boundary is read again: merging is idempotent).
    Raises SourceError (code "refused" for a statement that is not one read).
    """
    try:
        statement = read_statement_check(sql)
    except StatementRefused as exc:
        raise SourceError(str(exc), code="refused") from None
    with source_session(source) as session:
        tail, params = "", ()
        if incremental_column and since is not None:
            # Newlines: a trailing "-- comment" in the query must not swallow the wrapper.
            statement = f"SELECT * FROM (\n{statement}\n) cohortsync_source"
            tail = f"\nWHERE {session.quote(incremental_column)} >= {session.placeholder}"
            params = (since,)
        result = session.execute(statement, params, tail=tail)
        columns = [str(name) for name in result.keys()]

        def batches() -> Iterator[list[tuple[Any, ...]]]:
            try:
                while rows := session.fetch(result, batch_size):
                    yield rows
            except (SQLAlchemyError, sqlite3.Error) as exc:
                raise _source_error(exc, source) from None
            finally:
                result.close()

        yield QueryStream(columns=columns, batches=batches())


@dataclass(frozen=True)
class SourceCheck:
    ok: bool
    summary: str


def source_probe(source: SourceSettings) -> SourceCheck:
    """Connect and run a trivial read-only query; what a connection check reports."""
    try:
        with source_session(source) as session:
            session.scalar("SELECT 1")
            if source.kind == SourceKind.POSTGRESQL:
                version = f"PostgreSQL {session.scalar('SHOW server_version')}"
                read_only = session.scalar("SHOW transaction_read_only") == "on"
            elif source.kind == SourceKind.MYSQL:
                version = str(session.scalar("SELECT VERSION()"))
                version = f"MariaDB {version}" if "mariadb" in version.lower() else f"MySQL {version}"
                # MariaDB and MySQL 5.7 call it tx_read_only; MySQL 8 transaction_read_only.
                variable = "tx_read_only" if version.startswith("MariaDB") else "transaction_read_only"
                read_only = bool(int(session.scalar(f"SELECT @@SESSION.{variable}")))
            else:
                version = f"SQLite {session.scalar('SELECT sqlite_version()')}"
                read_only = bool(session.scalar("PRAGMA query_only"))
    except SourceError as exc:
        return SourceCheck(ok=False, summary=exc.message)
    if not read_only:
        return SourceCheck(ok=False, summary=f"{version} answered, but the session is not read-only.")
    timeout = source.statement_timeout_seconds
    return SourceCheck(
        ok=True, summary=f"{version}; read-only session, statement timeout {timeout:g} s."
    )


# --- Errors ------------------------------------------------------------------------------------

TIMEOUT_MARKERS = (
    "statement timeout",  # PostgreSQL
    "max_statement_time",  # MariaDB
    "maximum statement execution time",  # MySQL
    "interrupted",  # SQLite, through the progress handler
)
READ_ONLY_MARKERS = ("read-only transaction", "read only transaction", "readonly database")


def _source_error(exc: BaseException, source: SourceSettings, *, connecting: bool = False) -> SourceError:
    """A short, secret-free message from a driver error (never the SQL or its parameters)."""
    original = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    detail = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    if len(getattr(original, "args", ())) == 2 and isinstance(original.args[0], int):
        detail = str(original.args[1])  # PyMySQL: (code, message)
    if source.password:
        detail = detail.replace(source.password, "***")
    lowered = detail.lower()
    if connecting:
        return SourceError(f"Could not connect to the source: {detail}", code="connection_failed")
    if any(marker in lowered for marker in TIMEOUT_MARKERS):
        return SourceError(
            f"The query ran longer than the source's statement timeout "
            f"({source.statement_timeout_seconds:g} s) and was stopped. Make it cheaper (an "
            "index on the incremental column helps) or raise the statement_timeout_seconds "
            "option.",
            code="statement_timeout",
        )
    if any(marker in lowered for marker in READ_ONLY_MARKERS):
        return SourceError(
            f"The source refused to write ({detail}): CohortSync only ever reads a source.",
            code="read_only",
        )
    return SourceError(f"The source refused the query: {detail}", code="query_failed")
