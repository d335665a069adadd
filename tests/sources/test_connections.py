"""Source URLs, the one-read check, and sessions that are read-only in the database itself."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from sqlalchemy.exc import SQLAlchemyError

from sources import connections
from sources.connections import (
    SourceError,
    SourceUrlError,
    source_probe,
    source_query,
    source_session,
    source_url_parse,
)
from sources.models import Source, SourceKind
from sources.statements import StatementRefused, read_statement_check
from tests.sources.conftest import AppDatabase

pytestmark = pytest.mark.django_db


# --- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind", "url"),
    [
        ("postgres://reader@db.internal:5432/app", SourceKind.POSTGRESQL, "postgres://reader@db.internal:5432/app"),
        ("postgresql://reader@db.internal/app?sslmode=require", SourceKind.POSTGRESQL,
         "postgresql://reader@db.internal/app?sslmode=require"),
        ("postgresql+psycopg://reader@db/app", SourceKind.POSTGRESQL, "postgresql://reader@db/app"),
        ("mysql://reader@127.0.0.1:3306/app", SourceKind.MYSQL, "mysql://reader@127.0.0.1:3306/app"),
        ("mariadb://reader@db/app", SourceKind.MYSQL, "mariadb://reader@db/app"),
        ("sqlite:////srv/app/db.sqlite3", SourceKind.SQLITE, "sqlite:////srv/app/db.sqlite3"),
        ("sqlite:///var/app.sqlite3", SourceKind.SQLITE, "sqlite:///var/app.sqlite3"),
    ],
)
def test_plain_urls_need_no_driver(raw: str, kind: str, url: str) -> None:
    parsed = source_url_parse(raw)
    assert (parsed.kind, parsed.url, parsed.password) == (kind, url, "")


def test_the_password_is_taken_out_of_the_url() -> None:
    parsed = source_url_parse("postgres://reader:p%40ss:w0rd@db.internal:5432/app")

    assert parsed.password == "p@ss:w0rd"
    assert parsed.url == "postgres://reader@db.internal:5432/app"
    assert "w0rd" not in parsed.url


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "empty"),
        ("db.internal:5432", "not a database URL"),
        ("mssql://sa@db/app", "'mssql' databases are not supported"),
        ("postgresql+asyncpg://u@db/app", "remove '+asyncpg'"),
        ("postgres:///app", "names no host"),
        ("sqlite://", "needs a file"),
        ("sqlite:///:memory:", "needs a file"),
    ],
)
def test_unusable_urls_say_why(raw: str, message: str) -> None:
    with pytest.raises(SourceUrlError) as caught:
        source_url_parse(raw)
    assert message in caught.value.message


# --- The one-read check --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "select id from users;",
        "WITH pro AS (SELECT id FROM users WHERE plan = 'pro') SELECT id FROM pro",
        "(SELECT 1) UNION (SELECT 2)",
        "SELECT 'delete me' AS note, share, \"update\" FROM t -- a comment",
        "SELECT amount FROM t WHERE note LIKE '100%'",
    ],
)
def test_reads_pass_the_check(sql: str) -> None:
    assert read_statement_check(sql).lstrip().lower().startswith(("select", "with", "("))


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("DELETE FROM users", "not DELETE"),
        ("UPDATE users SET plan = 'free'", "not UPDATE"),
        ("DROP TABLE users", "not DROP"),
        ("SELECT 1; DROP TABLE users", "2 statements"),
        ("SELECT 1; SELECT 2", "2 statements"),
        ("WITH gone AS (DELETE FROM users RETURNING id) SELECT id FROM gone", "contains DELETE"),
        ("SELECT * INTO backup FROM users", "contains INTO"),
        ("SELECT id FROM users FOR UPDATE", "locks rows"),
        ("SELECT id FROM users LOCK IN SHARE MODE", "contains LOCK"),
        ("SET default_transaction_read_only = off", "not SET"),
        ("-- only a comment", "only comments"),
        ("   ", "empty"),
    ],
)
def test_anything_but_one_read_is_refused(sql: str, message: str) -> None:
    with pytest.raises(StatementRefused) as caught:
        read_statement_check(sql)
    assert message in str(caught.value)


# --- Sessions on the three engines ---------------------------------------------------------------


def test_check_answers_with_the_engine_and_a_read_only_session(app_db: AppDatabase) -> None:
    check = source_probe(app_db.source(options={"statement_timeout_seconds": 30}))

    assert check.ok, check.summary
    assert {"postgresql": "PostgreSQL", "mysql": "MariaDB", "sqlite": "SQLite"}[app_db.kind] in check.summary
    assert "read-only session, statement timeout 30 s" in check.summary


def test_a_refused_statement_never_reaches_the_database(app_db: AppDatabase, monkeypatch) -> None:
    app_db.create_users()
    app_db.insert_user("u1", plan="pro")
    source = app_db.source()
    opened: list[str] = []
    real_session = connections.source_session

    def watched(settings):  # type: ignore[no-untyped-def]
        opened.append(settings.name)
        return real_session(settings)

    monkeypatch.setattr(connections, "source_session", watched)
    for sql in ("DELETE FROM users", "SELECT 1; DELETE FROM users", "UPDATE users SET plan = 'free'"):
        with pytest.raises(SourceError) as caught:
            with source_query(source, sql=sql):
                pass
        assert caught.value.code == "refused"

    assert opened == []
    assert app_db.rows("SELECT id, plan FROM users") == [("u1", "pro")]


def test_the_session_itself_refuses_to_write(app_db: AppDatabase) -> None:
    """Past the statement check (CohortSync's own code calling the session directly), the
    database still refuses: the read-only session is the real guard."""
    app_db.create_users()
    app_db.insert_user("u1", plan="pro")
    source = app_db.source()

    for statement in ("INSERT INTO users (id, plan, version) VALUES ('u2', 'pro', 1)",
                      "UPDATE users SET plan = 'free'", "DELETE FROM users", "DROP TABLE users"):
        with pytest.raises((SourceError, SQLAlchemyError)) as caught:
            with source_session(source) as session:
                session.connection.exec_driver_sql(statement)
        assert "read" in str(caught.value).lower(), str(caught.value)

    assert app_db.rows("SELECT id, plan FROM users") == [("u1", "pro")]


def test_a_query_past_the_statement_timeout_is_stopped(app_db: AppDatabase) -> None:
    app_db.create_users()
    app_db.insert_user("u1")
    slow = {
        SourceKind.POSTGRESQL: "SELECT pg_sleep(5)",
        SourceKind.MYSQL: "SELECT SLEEP(5)",
        SourceKind.SQLITE: "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT max(x) FROM n",
    }[app_db.kind]
    source = app_db.source(options={"statement_timeout_seconds": 1})

    with pytest.raises(SourceError) as caught:
        with source_query(source, sql=slow) as stream:
            list(stream.batches)

    assert caught.value.code == "statement_timeout"
    assert "longer than the source's statement timeout (1 s)" in caught.value.message
    assert app_db.rows("SELECT id FROM users") == [("u1",)]


def test_a_missing_table_is_the_databases_own_words(app_db: AppDatabase) -> None:
    with pytest.raises(SourceError) as caught:
        with source_query(app_db.source(), sql="SELECT id FROM no_such_table") as stream:
            list(stream.batches)
    assert caught.value.code == "query_failed"
    assert "no_such_table" in caught.value.message
    assert "SELECT" not in caught.value.message  # never the SQL itself


def test_wrong_credentials_say_so_without_the_password(postgres_app_db: AppDatabase) -> None:
    source = postgres_app_db.source(url=postgres_app_db.url.replace("postgres@", "nobody@"),
                                    password="hunter2-secret")
    check = source_probe(source)
    assert not check.ok
    assert check.summary.startswith("Could not connect to the source")
    assert "hunter2-secret" not in check.summary


def test_a_missing_sqlite_file_is_named(tmp_path) -> None:
    check = source_probe(Source(name="gone", kind=SourceKind.SQLITE, url=f"sqlite:///{tmp_path}/gone.db"))
    assert not check.ok
    assert f"There is no SQLite database at {tmp_path}/gone.db" in check.summary
    assert not (tmp_path / "gone.db").exists()  # read-only: never created


def test_check_source_command_exits_0_or_1_with_a_message(sqlite_app_db: AppDatabase, tmp_path) -> None:
    sqlite_app_db.create_users()
    sqlite_app_db.source(name="App")
    Source.objects.create(name="Gone", kind=SourceKind.SQLITE, url=f"sqlite:///{tmp_path}/gone.db")
    out = io.StringIO()

    call_command("check_source", "App", stdout=out)
    assert "Connected: SQLite" in out.getvalue()
    assert Source.objects.get(name="App").is_connected is True

    with pytest.raises(CommandError) as failed:
        call_command("check_source", "Gone")
    assert failed.value.returncode == 1
    gone = Source.objects.get(name="Gone")
    assert gone.is_connected is False and "no SQLite database" in gone.connection_error
    with pytest.raises(CommandError) as unknown:
        call_command("check_source", "Nope")
    assert unknown.value.returncode == 2


def test_a_password_no_key_can_decrypt_is_reported_not_raised(postgres_app_db: AppDatabase) -> None:
    source = postgres_app_db.source(password="pw")
    with connection.cursor() as cursor:  # a ciphertext of a key CohortSync no longer has
        cursor.execute(f"UPDATE {Source._meta.db_table} SET password = %s WHERE id = %s",
                       ["fernet:not-a-token", source.pk])

    check = source_probe(Source.objects.defer("password").get(pk=source.pk))

    assert not check.ok
    assert "cannot be decrypted with any key" in check.summary
