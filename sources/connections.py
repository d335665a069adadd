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

import re
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.db import connection as own_connection
from psycopg.types.datetime import DateLoader, TimestampLoader, TimestamptzLoader
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
# Query parameters that carry the password itself: moved into the encrypted field like one
# in the user-info part.
PASSWORD_PARAMETERS = ("password", "passwd")
# Any other parameter named like a secret would be stored and shown in clear: refused.
_SECRET_PARAMETER = re.compile(r"pass|secret|token|credential", re.IGNORECASE)
_SECRET_PARAMETER_VALUE = re.compile(
    r"([?&][^=&#]*(?:pass|secret|token|credential)[^=&#]*=)[^&#]*", re.IGNORECASE
)
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
    elif "@" in url.host:
        # postgres://user:p@ss@db/app: the parser ends the password at the first @ and
        # the rest of it would be kept, in clear, as part of the host.
        raise SourceUrlError(
            "The URL has more than one @: percent-encode an @ inside the password (%40), or "
            "leave the password out of the URL and enter it in the Password field."
        )
    password, query = _password_from_query(url.password or "", dict(url.query))
    clean = URL.create(
        scheme.lower(),
        username=url.username,
        host=url.host,
        port=url.port,
        database=url.database,
        query=query,
    )
    rendered = clean.render_as_string(hide_password=False)
    if is_own_database(kind, rendered):
        raise SourceUrlError(OWN_DATABASE_MESSAGE)
    return ParsedSourceUrl(kind=kind, url=rendered, password=password)


OWN_DATABASE_MESSAGE = (
    "This is CohortSync's own database: a source reads your application's database, never "
    "CohortSync's, which holds its sessions, tokens and encrypted secrets."
)
_LOOPBACK_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1"})
_ENGINE_KINDS = {"sqlite3": SourceKind.SQLITE, "postgresql": SourceKind.POSTGRESQL, "mysql": SourceKind.MYSQL}
_DEFAULT_PORTS = {SourceKind.POSTGRESQL: 5432, SourceKind.MYSQL: 3306}


def is_own_database(kind: str, url: str) -> bool:
    """Whether a source URL names the database CohortSync itself runs on (the same file, or
    the same database on the same server, loopback names taken as one)."""
    own = own_connection.settings_dict
    if _ENGINE_KINDS.get(str(own.get("ENGINE", "")).rsplit(".", 1)[-1]) != kind:
        return False
    if kind == SourceKind.SQLITE:
        return sqlite_path(url).resolve() == Path(str(own.get("NAME") or "")).resolve()
    parsed = make_url(url)
    host, own_host = (parsed.host or "").lower(), str(own.get("HOST") or "").lower()
    same_host = host == own_host or {host, own_host} <= _LOOPBACK_HOSTS
    default_port = _DEFAULT_PORTS[kind]
    same_port = (parsed.port or default_port) == int(own.get("PORT") or default_port)
    return same_host and same_port and parsed.database == own.get("NAME")


def _password_from_query(password: str, query: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The password given as ?password= (libpq) or ?passwd= (PyMySQL) is moved out of the
    URL like one before the @; other secret-looking parameters are refused."""
    kept: dict[str, Any] = {}
    for key, value in query.items():
        if key.lower() in PASSWORD_PARAMETERS:
            if not isinstance(value, str) or (password and value != password):
                raise SourceUrlError(
                    "The URL gives the password more than once: keep one (or enter it in the "
                    "Password field)."
                )
            password = value
        elif _SECRET_PARAMETER.search(key):
            raise SourceUrlError(
                f"The URL's '{key}' parameter looks like a secret, and the URL is stored and "
                "shown in clear: remove it. Only the password is kept secret (in the URL or "
                "the Password field)."
            )
        else:
            kept[key] = value
    return password, kept


def source_url_redacted(raw: str) -> str:
    """The URL as typed with whatever could be a password taken out, for showing it back
    (a form with errors); it need not be a valid URL."""
    text = (raw or "").strip()
    scheme, separator, rest = text.partition("://")
    if separator and "@" in rest:
        user_info, host_and_rest = rest[: rest.rfind("@")], rest[rest.rfind("@") + 1 :]
        user = user_info.split(":", 1)[0]
        text = f"{scheme}://{user}@{host_and_rest}"
    return _SECRET_PARAMETER_VALUE.sub(r"\1", text)


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


def _sqlite_text(raw: bytes) -> str | bytes:
    """SQLite TEXT as str; text that is not UTF-8 (SQLite stores whatever it is given) stays
    bytes, so its row is rejected with a reason instead of the whole read failing."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def _engine(source: SourceSettings, deadline: _Deadline) -> Engine:
    kind = source.kind
    timeout = source.statement_timeout_seconds
    if is_own_database(kind, source.url):  # saved before this check, or by hand
        raise SourceError(OWN_DATABASE_MESSAGE, code="invalid_url")
    if kind == SourceKind.SQLITE:
        path = sqlite_path(source.url)
        if not path.is_file():
            raise SourceError(f"There is no SQLite database at {path}.", code="connection_failed")

        def connect() -> sqlite3.Connection:
            uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
            connection = sqlite3.connect(uri, uri=True, timeout=CONNECT_TIMEOUT_SECONDS)
            connection.execute("PRAGMA query_only = ON")
            connection.text_factory = _sqlite_text
            connection.set_progress_handler(lambda: 1 if deadline.passed() else 0, SQLITE_PROGRESS_STEPS)
            return connection

        return create_engine("sqlite+pysqlite://", creator=connect, poolclass=NullPool)

    url = make_url(source.url).set(drivername=KIND_DRIVERS[kind])
    if source.password:
        url = url.set(password=source.password)
    if kind == SourceKind.POSTGRESQL:
        return _postgresql_engine(url, timeout)
    return _mysql_engine(url, timeout)


# PostgreSQL dates and timestamps may be 'infinity' or '-infinity', which Python's datetime
# cannot hold: psycopg raised on the first such row and the whole read failed. They are read
# as that text instead (a property "infinity"; never a high-water mark).
INFINITE_TIMES = ("infinity", "-infinity")
_INFINITE_TIMES_BYTES = tuple(text.encode() for text in INFINITE_TIMES)


def _infinity_tolerant(base: type[Any]) -> type[Any]:
    class InfinityTolerantLoader(base):  # type: ignore[misc, valid-type]
        def load(self, data: Any) -> Any:
            text = bytes(data)
            if text in _INFINITE_TIMES_BYTES:
                return text.decode()
            return super().load(data)

    return InfinityTolerantLoader


_TIME_LOADERS = {
    "timestamptz": _infinity_tolerant(TimestamptzLoader),
    "timestamp": _infinity_tolerant(TimestampLoader),
    "date": _infinity_tolerant(DateLoader),
}


def _infinity_as_text(dbapi_connection: Any, _record: Any) -> None:
    for type_name, loader in _TIME_LOADERS.items():
        dbapi_connection.adapters.register_loader(type_name, loader)


def _postgresql_engine(url: URL, timeout: float) -> Engine:
    startup = (
        f"-c default_transaction_read_only=on -c statement_timeout={int(timeout * 1000)} "
        "-c TimeZone=UTC"
    )
    engine = create_engine(
        url,
        poolclass=NullPool,
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "options": startup,
            "application_name": "cohortsync",
        },
    )
    event.listen(engine, "connect", _infinity_as_text)
    return engine


def _mysql_engine(url: URL, timeout: float) -> Engine:
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
        self._streams: list[Any] = []

    def streams_close(self) -> None:
        """Close the results a caller left unread (a check on their columns failed). PyMySQL
        reads what is left of an unbuffered result before the connection's next statement
        either way; closing it here does that without a warning."""
        for result in self._streams:
            result.close()

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
        result = self.connection.execution_options(stream_results=True).exec_driver_sql(
            self._driver_sql(sql) + tail, tuple(params)
        )
        self._streams.append(result)
        return result

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
        session: ReadOnlySession | None = None
        try:
            if source.kind == SourceKind.MYSQL:
                connection.exec_driver_sql("START TRANSACTION READ ONLY")
            elif source.kind == SourceKind.POSTGRESQL:
                connection.exec_driver_sql("SET TRANSACTION READ ONLY")
            session = ReadOnlySession(connection, source.kind, deadline)
            yield session
        except SQLAlchemyError as exc:
            raise _source_error(exc, source) from None
        except sqlite3.Error as exc:  # raised by the driver outside SQLAlchemy's wrapping
            raise _source_error(exc, source) from None
        finally:
            try:
                if session is not None:
                    session.streams_close()
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
