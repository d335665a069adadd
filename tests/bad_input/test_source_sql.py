"""Bad input, SQL sources: queries that try to do more than read, URLs that carry secrets
where they would be shown, and source data a careless application stores. Each case is
refused with a specific message before it reaches the database, or reads every valid row
and rejects only the bad one; never a traceback, never the password shown back."""

from __future__ import annotations

import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse

from cohorts.models import Profile
from sources.connections import SourceError, SourceUrlError, source_query, source_url_parse
from sources.models import ImportedProfile, ImportRun, ImportRunStatus, ProfileImport, Source
from sources.services import cohort_refresh, import_run_create, import_run_process
from sources.statements import StatementRefused, read_statement_check
from tests.factories import ProfileFactory, ProfileImportFactory, SqlCohortFactory
from tests.sources.conftest import AppDatabase

pytestmark = pytest.mark.django_db


def _run(profile_import: ProfileImport, *, full: bool = False) -> ImportRun:
    run = import_run_create(profile_import=profile_import, trigger=ImportRun.Trigger.CLI, full=full)
    return import_run_process(run_id=run.pk)


# --- Queries that slip past "one SELECT" ----------------------------------------------------------


@dataclass(frozen=True)
class Query:
    id: str
    sql: str
    says: str


REFUSED = [
    Query("MySQL executable comment writing a file", "SELECT id FROM users /*! INTO OUTFILE '/tmp/x' */",
          "executable comment (/*! INTO OUTFILE"),
    Query("versioned executable comment", "SELECT id FROM users /*!50000 INTO DUMPFILE '/tmp/x' */",
          "executable comment"),
    Query("MariaDB executable comment", "SELECT 1 /*M! , (SELECT 1) */", "executable comment"),
    Query("dblink_exec: a DELETE over a second connection", "SELECT dblink_exec('dbname=app', 'DELETE FROM users')",
          "calls dblink_exec(), which acts outside the read-only session"),
    Query("dblink in FROM, schema-qualified",
          "SELECT * FROM public.dblink('dbname=app', 'SELECT 1') AS t(a int)", "calls dblink()"),
    Query("a quoted function name", "SELECT \"dblink_exec\"('dbname=app', 'DELETE FROM users')",
          "calls dblink_exec()"),
    Query("a space before the parenthesis", "SELECT pg_read_file ('/etc/passwd')", "calls pg_read_file()"),
    Query("a comment before the parenthesis", "SELECT lo_import/**/('/etc/passwd')", "calls lo_import()"),
    Query("large object export", "SELECT lo_export(1, '/tmp/x')", "calls lo_export()"),
    Query("killing other sessions", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity",
          "calls pg_terminate_backend()"),
    Query("SQL inside a string", "SELECT query_to_xml('DELETE FROM users', true, true, '')", "calls query_to_xml()"),
    Query("session settings", "SELECT set_config('default_transaction_read_only', 'off', false)",
          "calls set_config()"),
    Query("MySQL server files", "SELECT LOAD_FILE('/etc/passwd') AS distinct_id", "calls load_file()"),
    Query("backquoted MySQL name", "SELECT `load_file`('/etc/passwd')", "calls load_file()"),
    Query("SQLite native code", "SELECT load_extension('/tmp/evil.so')", "calls load_extension()"),
    Query("a Unicode-escaped name", 'SELECT U&"dblink\\005fexec"(\'x\', \'y\')', "Unicode-escaped name"),
    Query("SELECT INTO in a CTE", "WITH x AS (SELECT 1) SELECT * INTO copy FROM x", "contains INTO"),
    Query("DML in a CTE", "WITH x AS (UPDATE users SET plan = 'free' RETURNING id) SELECT * FROM x",
          "contains UPDATE"),
    Query("MERGE in a CTE", "WITH x AS (MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE) SELECT 1",
          "contains MERGE"),
    Query("a second statement after a comment line", "SELECT 1 -- ; \n; DELETE FROM users", "2 statements"),
    Query("EXPLAIN ANALYZE runs its statement", "EXPLAIN ANALYZE DELETE FROM users", "not EXPLAIN"),
    Query("ATTACH", "ATTACH DATABASE '/tmp/x.db' AS x", "not ATTACH"),
]


@pytest.mark.parametrize("case", REFUSED, ids=[case.id for case in REFUSED])
def test_queries_that_would_act_outside_a_read_are_refused(case: Query) -> None:
    with pytest.raises(StatementRefused) as caught:
        read_statement_check(case.sql)
    assert case.says in str(caught.value)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT id AS distinct_id, dblink, lo_import FROM users",  # columns, not calls
        "SELECT 'dblink_exec(' AS note, 'SELECT 1 /*! x */' AS text FROM users",  # inside strings
        "SELECT id /* a plain comment */ FROM users",
        "SELECT id FROM users WHERE note LIKE '%/*!%'",
        "SELECT count(*) AS n, max(updated_at) FROM users",
    ],
)
def test_reads_that_only_look_like_those_still_pass(sql: str) -> None:
    assert read_statement_check(sql).lower().startswith("select")


def test_an_executable_comment_writes_no_file_on_a_mariadb_server(mariadb_app_db: AppDatabase) -> None:
    mariadb_app_db.create_users()
    mariadb_app_db.insert_user("u1")
    target = f"/tmp/cohortsync-outfile-{uuid.uuid4().hex}"
    profile_import = ProfileImportFactory(
        source=mariadb_app_db.source(), sql=f"SELECT id AS distinct_id FROM users /*! INTO OUTFILE '{target}' */"
    )

    run = _run(profile_import)

    assert run.status == ImportRunStatus.FAILED
    assert run.error_code == "refused"
    assert "executable comment" in run.error_message
    assert not os.path.exists(target)


def test_dblink_exec_cannot_write_through_a_read_only_source(postgres_app_db: AppDatabase) -> None:
    postgres_app_db.execute("CREATE EXTENSION IF NOT EXISTS dblink")
    postgres_app_db.create_users()
    postgres_app_db.insert_user("u1")
    database = postgres_app_db.url.rsplit("/", 1)[1]
    sql = (f"SELECT dblink_exec('dbname={database} user=postgres host=127.0.0.1', 'DELETE FROM users') "
           "AS distinct_id")

    with pytest.raises(SourceError) as caught:
        with source_query(postgres_app_db.source(), sql=sql):
            pass

    assert caught.value.code == "refused"
    assert postgres_app_db.rows("SELECT id FROM users") == [("u1",)]


@pytest.mark.parametrize(
    "column",
    ['version" >= 0 OR 1=1 --', "version` >= 0 OR 1=1 -- ", "version%s", "version'; DROP TABLE users; --"],
)
def test_a_hostile_incremental_column_is_a_name_never_sql(app_db: AppDatabase, column: str) -> None:
    app_db.create_users()
    app_db.insert_user("u1", version=1)
    profile_import = ProfileImportFactory(
        source=app_db.source(), sql="SELECT id AS distinct_id, version FROM users", incremental_column=column,
        high_water_mark={"type": "number", "value": 5},
    )

    run = _run(profile_import)

    assert run.status == ImportRunStatus.FAILED
    assert run.error_code in ("query_failed", "invalid_columns"), run.error_message
    assert "Traceback" not in run.error_message
    assert app_db.rows("SELECT id, version FROM users") == [("u1", 1)]
    assert not Profile.objects.exists()


# --- Source data a careless application stores -------------------------------------------------


def test_a_nul_in_an_id_rejects_its_row_and_delete_missing_keeps_going(mariadb_app_db: AppDatabase) -> None:
    # Before: the NUL id was remembered for delete_missing and PostgreSQL refused it: the
    # whole import failed with internal_error.
    mariadb_app_db.execute("CREATE TABLE u (id VARCHAR(300), plan VARCHAR(10))")
    for user_id, plan in (("ok1", "pro"), ("bad\x00id", "pro"), ("y" * 300, "pro"), (None, "pro"), ("ok2", "free")):
        mariadb_app_db.execute("INSERT INTO u VALUES (%s, %s)", [user_id, plan])
    ProfileFactory(distinct_id="gone", properties={"plan": "free"})
    profile_import = ProfileImportFactory(source=mariadb_app_db.source(), delete_missing=True,
                                          sql="SELECT id AS distinct_id, plan FROM u")
    ImportedProfile.objects.create(profile_import=profile_import, distinct_id="gone", last_run_id=0)

    run = _run(profile_import)

    assert run.status == ImportRunStatus.SUCCEEDED, run.error_message
    assert (run.rows_read, run.created, run.rejected, run.deleted) == (5, 2, 3, 1)
    reasons = [reject["reason"] for reject in run.rejects]
    assert any("NUL" in reason for reason in reasons)
    assert any("longer than 255" in reason for reason in reasons)
    assert dict(Profile.objects.values_list("distinct_id", "properties")) == {
        "ok1": {"plan": "pro"}, "ok2": {"plan": "free"},
    }
    assert sorted(ImportedProfile.objects.values_list("distinct_id", flat=True)) == ["ok1", "ok2"]


def test_an_sql_cohort_with_a_nul_id_fails_its_refresh_with_a_message(mariadb_app_db: AppDatabase) -> None:
    mariadb_app_db.execute("CREATE TABLE u (id VARCHAR(64))")
    for user_id in ("ok1", "bad\x00id", "ok2"):
        mariadb_app_db.execute("INSERT INTO u VALUES (%s)", [user_id])
    cohort = SqlCohortFactory(source=mariadb_app_db.source(), sql="SELECT id AS distinct_id FROM u")

    with pytest.raises(SourceError) as caught:
        cohort_refresh(cohort=cohort)

    assert caught.value.code == "invalid_rows"
    assert caught.value.message.startswith("Row ") and "NUL" in caught.value.message
    cohort.refresh_from_db()
    assert cohort.refresh_error == caught.value.message


def test_nan_and_infinity_in_the_incremental_column_never_become_the_mark(postgres_app_db: AppDatabase) -> None:
    postgres_app_db.execute("CREATE TABLE u (id TEXT, n NUMERIC, f DOUBLE PRECISION)")
    for row in (("a", "1", "1"), ("b", "NaN", "Infinity"), ("c", "3", "3"), ("d", None, "-Infinity")):
        postgres_app_db.execute("INSERT INTO u VALUES (%s, %s, %s)", row)
    source = postgres_app_db.source()

    for column, rejected_rows in (("n", [2]), ("f", [2, 4])):
        profile_import = ProfileImportFactory(source=source, sql=f"SELECT id AS distinct_id, {column} FROM u",
                                              incremental_column=column)
        run = _run(profile_import)

        assert run.status == ImportRunStatus.SUCCEEDED, run.error_message
        assert float(run.high_water_mark["value"]) == 3
        assert [reject["row"] for reject in run.rejects] == rejected_rows  # not JSON numbers
        assert run.created + run.updated + run.unchanged == 4 - len(rejected_rows)
        second = _run(ProfileImport.objects.get(pk=profile_import.pk))
        assert second.status == ImportRunStatus.SUCCEEDED, second.error_message


def test_infinite_postgresql_timestamps_are_read_as_text_not_a_failed_import(postgres_app_db: AppDatabase) -> None:
    # Before: "timestamp too large (after year 10K): 'infinity'" failed the whole import.
    postgres_app_db.execute("CREATE TABLE u (id TEXT, seen TIMESTAMPTZ, local TIMESTAMP, day DATE)")
    postgres_app_db.execute("INSERT INTO u VALUES ('a', '2024-05-01 10:00+00', '2024-05-01 10:00', '2024-05-01')")
    postgres_app_db.execute("INSERT INTO u VALUES ('b', 'infinity', '-infinity', 'infinity')")
    postgres_app_db.execute("INSERT INTO u VALUES ('c', '-infinity', 'infinity', '-infinity')")
    profile_import = ProfileImportFactory(source=postgres_app_db.source(), incremental_column="seen",
                                          sql="SELECT id AS distinct_id, seen, local, day FROM u")

    run = _run(profile_import)

    assert run.status == ImportRunStatus.SUCCEEDED, run.error_message
    assert run.high_water_mark == {"type": "datetime", "value": "2024-05-01T10:00:00+00:00"}
    assert dict(Profile.objects.values_list("distinct_id", "properties")) == {
        "a": {"seen": "2024-05-01T10:00:00Z", "local": "2024-05-01T10:00:00Z", "day": "2024-05-01"},
        "b": {"seen": "infinity", "local": "-infinity", "day": "infinity"},
        "c": {"seen": "-infinity", "local": "infinity", "day": "-infinity"},
    }
    again = _run(ProfileImport.objects.get(pk=profile_import.pk))
    assert again.status == ImportRunStatus.SUCCEEDED, again.error_message


def test_text_that_is_not_utf8_in_sqlite_rejects_its_row_only(sqlite_app_db: AppDatabase) -> None:
    # Before: "Could not decode to UTF-8 column 'bio' with text ..." failed the whole import.
    sqlite_app_db.execute("CREATE TABLE u (id TEXT, bio TEXT)")
    sqlite_app_db.execute("INSERT INTO u VALUES ('a', 'fine')")
    sqlite_app_db.execute("INSERT INTO u VALUES ('b', CAST(X'FFFE' AS TEXT))")
    sqlite_app_db.execute("INSERT INTO u VALUES (CAST(X'C3' AS TEXT), 'fine')")
    sqlite_app_db.execute("INSERT INTO u VALUES ('c', 'été')")

    run = _run(ProfileImportFactory(source=sqlite_app_db.source(), sql="SELECT id AS distinct_id, bio FROM u"))

    assert run.status == ImportRunStatus.SUCCEEDED, run.error_message
    assert dict(Profile.objects.values_list("distinct_id", "properties")) == {
        "a": {"bio": "fine"}, "c": {"bio": "été"},
    }
    assert [(r["row"], r["reason"].split(" (")[0]) for r in run.rejects] == [
        (2, "column bio: binary data that is not UTF-8 text"),
        (3, "distinct_id: binary data that is not UTF-8 text"),
    ]


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("SELECT email FROM users", "exactly one distinct_id column"),
        ("SELECT id AS distinct_id, email AS distinct_id FROM users", "more than once"),
        ("SELECT id AS distinct_id, plan, plan FROM users", "the column 'plan' more than once"),
        ("SELECT id AS distinct_id, id AS \"$distinct_id\" FROM users", "exactly one distinct_id column"),
    ],
)
def test_a_query_without_one_clean_id_column_says_so(app_db: AppDatabase, sql: str, says: str) -> None:
    app_db.create_users()
    app_db.insert_user("u1")
    run = _run(ProfileImportFactory(source=app_db.source(), sql=sql))
    assert run.status == ImportRunStatus.FAILED
    assert run.error_code == "invalid_columns"
    assert says in run.error_message
    assert not Profile.objects.exists()


def test_long_values_and_odd_ids_are_kept_or_rejected_one_by_one(app_db: AppDatabase) -> None:
    app_db.execute("CREATE TABLE u (id VARCHAR(300), bio TEXT, n INTEGER)")
    for row in (("a", "x" * 10_000, 1), ("  b  ", None, 2), ("", "empty id", 3), ("c" * 256, "long id", 4)):
        app_db.execute("INSERT INTO u VALUES (%s, %s, %s)", list(row))

    run = _run(ProfileImportFactory(
        source=app_db.source(),
        sql="SELECT id AS distinct_id, bio FROM u",
    ))

    assert run.status == ImportRunStatus.SUCCEEDED, run.error_message
    assert dict(Profile.objects.values_list("distinct_id", "properties")) == {
        "a": {"bio": "x" * 10_000}, "b": {},
    }
    assert sorted(reject["reason"].split(" (")[0] for reject in run.rejects) == [
        "distinct_id is empty", "distinct_id is longer than 255 characters",
    ]


# --- URLs that carry a secret ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "url", "password"),
    [
        ("postgres://reader@db.internal/app?password=hunter2", "postgres://reader@db.internal/app", "hunter2"),
        ("postgres://db.internal/app?user=reader&password=hunter2&sslmode=require",
         "postgres://db.internal/app?sslmode=require&user=reader", "hunter2"),
        ("mysql://reader@db.internal/app?passwd=hunter2&charset=utf8mb4",
         "mysql://reader@db.internal/app?charset=utf8mb4", "hunter2"),
        ("postgres://reader:hunter2@db.internal/app?password=hunter2", "postgres://reader@db.internal/app", "hunter2"),
    ],
)
def test_a_password_in_the_query_string_is_moved_out_like_one_before_the_at(raw: str, url: str, password: str) -> None:
    parsed = source_url_parse(raw)
    assert (parsed.url, parsed.password) == (url, password)


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("postgres://reader:hun@ter2@db.internal/app", "more than one @"),
        ("postgres://reader:first-pw@db.internal/app?password=second-pw", "password more than once"),
        ("postgres://reader@db.internal/app?sslpassword=keypass", "'sslpassword' parameter looks like a secret"),
        ("mysql://reader@db.internal/app?token=tok-value", "'token' parameter looks like a secret"),
    ],
)
def test_a_secret_the_url_would_show_in_clear_is_refused(raw: str, says: str) -> None:
    with pytest.raises(SourceUrlError) as caught:
        source_url_parse(raw)
    assert says in caught.value.message
    for secret in ("ter2", "first-pw", "second-pw", "keypass", "tok-value"):
        assert secret not in caught.value.message


@pytest.mark.parametrize(
    ("own", "url", "refused"),
    [
        ({"ENGINE": "django.db.backends.sqlite3", "NAME": "{tmp}/cohortsync.sqlite3"},
         "sqlite:///{tmp}/cohortsync.sqlite3", True),
        ({"ENGINE": "django.db.backends.sqlite3", "NAME": "{tmp}/cohortsync.sqlite3"},
         "sqlite:///{tmp}/./cohortsync.sqlite3", True),
        ({"ENGINE": "django.db.backends.sqlite3", "NAME": "{tmp}/cohortsync.sqlite3"},
         "sqlite:///{tmp}/app.sqlite3", False),
        ({"ENGINE": "django.db.backends.postgresql", "HOST": "127.0.0.1", "PORT": "5432", "NAME": "cohortsync"},
         "postgres://reader@localhost/cohortsync", True),
        ({"ENGINE": "django.db.backends.postgresql", "HOST": "db.internal", "PORT": "", "NAME": "cohortsync"},
         "postgresql://reader@DB.internal:5432/cohortsync", True),
        ({"ENGINE": "django.db.backends.postgresql", "HOST": "127.0.0.1", "PORT": "5432", "NAME": "cohortsync"},
         "postgres://reader@localhost/app", False),
        ({"ENGINE": "django.db.backends.postgresql", "HOST": "127.0.0.1", "PORT": "5432", "NAME": "cohortsync"},
         "mysql://reader@localhost/cohortsync", False),
    ],
)
def test_cohortsyncs_own_database_is_never_a_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                     own: dict[str, str], url: str, refused: bool) -> None:
    # Its query's rows become profiles that every viewer sees: pointed at CohortSync's own
    # database, a source would show django_session keys (a superuser's session) and tokens.
    from django.db import connection

    url = url.replace("{tmp}", str(tmp_path))
    kind = {"sqlite": "sqlite", "postgres": "postgresql", "postgresql": "postgresql", "mysql": "mysql"}[
        url.split(":", 1)[0]
    ]
    source = Source.objects.create(name="Own", kind=kind, url=url)
    for key, value in own.items():
        monkeypatch.setitem(connection.settings_dict, key, value.replace("{tmp}", str(tmp_path)))

    if not refused:
        assert source_url_parse(url).url
        return
    with pytest.raises(SourceUrlError) as caught:
        source_url_parse(url)
    assert "CohortSync's own database" in caught.value.message
    with pytest.raises(SourceError) as at_use:
        with source_query(source, sql="SELECT session_key AS distinct_id FROM django_session"):
            pass
    assert at_use.value.code == "invalid_url"


def test_a_form_with_errors_never_shows_the_pasted_password_again(admin_client) -> None:
    add = admin_client.post(reverse("admin:sources_source_add"), {
        "name": "App", "url": "postgres://reader:hunter2@db.internal/app?sslmode=require", "options": "{not json",
    })
    assert add.status_code == 200
    page = add.content.decode()
    assert "hunter2" not in page
    assert "postgres://reader@db.internal/app?sslmode=require" in page
    assert "The password was taken out of the URL shown here" in page

    source = Source.objects.create(name="App", kind="postgresql", url="postgres://reader@db.internal/app")
    change = admin_client.post(reverse("admin:sources_source_change", args=[source.pk]), {
        "name": "App", "url": "postgres://reader@db.internal/app?password=s3cret-pw", "options": "[1]",
    })
    assert change.status_code == 200
    assert "s3cret-pw" not in change.content.decode()

    saved = admin_client.post(reverse("admin:sources_source_change", args=[source.pk]), {
        "name": "App", "url": "postgres://reader@db.internal/app?password=s3cret-pw", "options": "{}",
    })
    assert saved.status_code == 302
    source.refresh_from_db()
    assert (source.url, source.password) == ("postgres://reader@db.internal/app", "s3cret-pw")
    for page in (admin_client.get(reverse("admin:sources_source_change", args=[source.pk])),
                 admin_client.get(reverse("admin:sources_source_changelist")),
                 admin_client.get(reverse("admin:sources_source_history", args=[source.pk]))):
        assert "s3cret-pw" not in page.content.decode()
    dump = io.StringIO()
    call_command("dumpdata", "sources", stdout=dump)
    assert "s3cret-pw" not in dump.getvalue()


def test_a_connection_error_never_names_the_password(tmp_path: Path) -> None:
    source = Source.objects.create(name="Down", kind="postgresql", url="postgres://reader@127.0.0.1:1/app",
                                   password="pw-0f-the-reader")
    with pytest.raises(SourceError) as caught:
        with source_query(Source.objects.get(pk=source.pk), sql="SELECT 1 AS distinct_id"):
            pass
    assert caught.value.code == "connection_failed"
    assert "pw-0f-the-reader" not in caught.value.message
