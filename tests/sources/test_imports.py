"""Profile imports from PostgreSQL, MariaDB and SQLite: full and incremental runs with
inserts, updates, NULLs and deletes, converted like file imports, every run recorded."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from cohorts.models import Profile
from sources.models import ImportedProfile, ImportRun, ImportRunStatus, ProfileImport, SourceKind
from sources.services import import_run_create, import_run_process
from tests.factories import ProfileFactory, ProfileImportFactory
from tests.sources.conftest import AppDatabase

pytestmark = pytest.mark.django_db

SELECT_USERS = (
    'SELECT id AS distinct_id, email AS "$email", plan, amount, seen_at, signup, version FROM users'
)


def _import(app_db: AppDatabase, **fields) -> ProfileImport:  # type: ignore[no-untyped-def]
    fields.setdefault("sql", SELECT_USERS)
    return ProfileImportFactory(source=app_db.source(), **fields)


def _run(profile_import: ProfileImport, *, full: bool = False) -> ImportRun:
    run = import_run_create(profile_import=profile_import, trigger=ImportRun.Trigger.CLI, full=full)
    return import_run_process(run_id=run.pk)


def _properties(distinct_id: str) -> dict:  # type: ignore[type-arg]
    return Profile.objects.get(distinct_id=distinct_id).properties


def _seen_at(app_db: AppDatabase) -> str:
    """2024-05-01 08:00 UTC, written the way each application writes it."""
    if app_db.kind == SourceKind.MYSQL:
        return "2024-05-01 13:00:00"  # the application's session is at +05:00
    return "2024-05-01 10:00:00+02:00"


def test_a_full_import_creates_converts_and_records(app_db: AppDatabase) -> None:
    app_db.create_users()
    app_db.insert_user("u1", email="ana@example.com", plan="pro", amount="12.50", seen_at=_seen_at(app_db),
                       signup="2024-04-30", version=1)
    app_db.insert_user("u2", email=None, plan="free", amount="3.00", version=2)
    profile_import = _import(app_db)

    run = _run(profile_import)

    assert run.status == ImportRunStatus.SUCCEEDED, run.error_message
    assert (run.rows_read, run.created, run.updated, run.rejected, run.deleted) == (2, 2, 0, 0, 0)
    assert run.duration_seconds is not None
    assert _properties("u1") == {
        "$email": "ana@example.com",
        "plan": "pro",
        "amount": 12.5,
        "seen_at": "2024-05-01T08:00:00Z",
        "signup": "2024-04-30",
        "version": 1,
    }
    # NULLs are not stored; a whole decimal is a whole number.
    assert _properties("u2") == {"plan": "free", "amount": 3, "version": 2}

    again = _run(profile_import)
    assert (again.rows_read, again.created, again.updated, again.unchanged) == (2, 0, 0, 2)


def test_updates_merge_and_null_removes_a_property(app_db: AppDatabase) -> None:
    app_db.create_users()
    app_db.insert_user("u1", email="ana@example.com", plan="free", version=1)
    ProfileFactory(distinct_id="u1", properties={"$email": "old@example.com", "country": "PT"})
    profile_import = _import(app_db, sql='SELECT id AS distinct_id, email AS "$email", plan FROM users')

    first = _run(profile_import)
    assert (first.created, first.updated) == (0, 1)
    # Properties the query does not select are kept (merged, like file imports).
    assert _properties("u1") == {"$email": "ana@example.com", "plan": "free", "country": "PT"}

    app_db.execute("UPDATE users SET plan = 'pro', email = NULL WHERE id = 'u1'")
    second = _run(profile_import)

    assert (second.updated, second.unchanged) == (1, 0)
    assert _properties("u1") == {"plan": "pro", "country": "PT"}


def test_an_incremental_import_reads_from_its_high_water_mark(app_db: AppDatabase) -> None:
    app_db.create_users()
    for number in range(1, 4):
        app_db.insert_user(f"u{number}", plan="free", version=number)
    profile_import = _import(app_db, incremental_column="version")

    first = _run(profile_import)
    assert (first.rows_read, first.created) == (3, 3)
    assert first.high_water_mark == {"type": "number", "value": 3}
    profile_import.refresh_from_db()
    assert profile_import.high_water_mark == {"type": "number", "value": 3}

    app_db.execute("UPDATE users SET plan = 'pro', version = 4 WHERE id = 'u1'")
    app_db.insert_user("u5", plan="team", version=5)
    second = _run(profile_import)

    # u3 (the boundary, version 3) is read again; u2 is not read at all.
    assert second.status == ImportRunStatus.SUCCEEDED, second.error_message
    assert second.rows_read == 3
    assert (second.created, second.updated, second.unchanged) == (1, 1, 1)
    assert second.high_water_mark_before == {"type": "number", "value": 3}
    assert second.high_water_mark == {"type": "number", "value": 5}
    assert _properties("u1")["plan"] == "pro"
    assert _properties("u5") == {"plan": "team", "version": 5}
    assert Profile.objects.count() == 4

    nothing_new = _run(profile_import)
    assert (nothing_new.rows_read, nothing_new.unchanged) == (1, 1)

    full = _run(profile_import, full=True)
    assert full.rows_read == 4 and full.is_full


def test_an_incremental_timestamp_column_keeps_its_own_time_zone(app_db: AppDatabase) -> None:
    app_db.create_users()
    app_db.insert_user("u1", seen_at=_seen_at(app_db), version=1)
    profile_import = _import(app_db, sql="SELECT id AS distinct_id, seen_at FROM users WHERE seen_at IS NOT NULL",
                             incremental_column="seen_at")

    first = _run(profile_import)
    assert first.rows_read == 1, first.error_message
    later = {SourceKind.MYSQL: "2024-05-01 14:00:00"}.get(app_db.kind, "2024-05-01 11:00:00+02:00")
    app_db.insert_user("u2", seen_at=later, version=2)

    second = _run(profile_import)

    assert second.status == ImportRunStatus.SUCCEEDED, second.error_message
    assert second.rows_read == 2  # the boundary row and the new one
    assert _properties("u2") == {"seen_at": "2024-05-01T09:00:00Z"}


def test_delete_missing_deletes_only_what_the_import_returned_before(app_db: AppDatabase) -> None:
    app_db.create_users()
    for user_id in ("u1", "u2", "u3"):
        app_db.insert_user(user_id, version=1)
    ProfileFactory(distinct_id="from-a-file")
    profile_import = _import(app_db, sql="SELECT id AS distinct_id, plan FROM users", delete_missing=True)
    _run(profile_import)

    app_db.execute("DELETE FROM users WHERE id = 'u2'")
    run = _run(profile_import)

    assert run.status == ImportRunStatus.SUCCEEDED, run.error_message
    assert run.deleted == 1
    assert sorted(Profile.objects.values_list("distinct_id", flat=True)) == ["from-a-file", "u1", "u3"]
    assert set(ImportedProfile.objects.values_list("distinct_id", flat=True)) == {"u1", "u3"}


def test_delete_missing_is_off_by_default_and_an_empty_result_deletes_nothing(app_db: AppDatabase) -> None:
    app_db.create_users()
    app_db.insert_user("u1", version=1)
    keeps = _import(app_db, sql="SELECT id AS distinct_id, plan FROM users")
    _run(keeps)
    app_db.execute("DELETE FROM users")

    assert _run(keeps).deleted == 0
    assert Profile.objects.filter(distinct_id="u1").exists()

    deletes = _import(app_db, sql="SELECT id AS distinct_id, plan FROM users", delete_missing=True)
    app_db.insert_user("u1", version=1)
    _run(deletes)
    app_db.execute("DELETE FROM users")
    run = _run(deletes)

    assert run.deleted == 0
    assert "returned no rows, so nothing was deleted" in run.error_message
    assert Profile.objects.filter(distinct_id="u1").exists()


def test_bad_rows_are_rejected_with_their_row_and_the_rest_imported(app_db: AppDatabase) -> None:
    app_db.create_users()
    app_db.insert_user("u1", version=1)
    app_db.insert_user("   ", version=2)
    app_db.insert_user("u3", email="x" * 10, version=3)
    profile_import = _import(app_db, sql="SELECT id AS distinct_id, plan, version FROM users ORDER BY version")

    run = _run(profile_import)

    assert run.status == ImportRunStatus.SUCCEEDED
    assert (run.rows_read, run.created, run.rejected) == (3, 2, 1)
    assert run.rejects == [{"row": 2, "reason": "distinct_id is empty (distinct_id '   ')"}]


@pytest.mark.parametrize(
    ("sql", "incremental", "message"),
    [
        ("SELECT plan FROM users", "", "must return exactly one distinct_id column"),
        ("SELECT id AS distinct_id, plan AS x, email AS x FROM users", "", "column 'x' more than once"),
        ("SELECT id AS distinct_id FROM users", "version", "'version' is not a column of the query's result"),
        ("DELETE FROM users", "", "not DELETE"),
    ],
)
def test_a_query_that_cannot_be_imported_fails_the_run_with_a_message(
    sqlite_app_db: AppDatabase, sql: str, incremental: str, message: str
) -> None:
    sqlite_app_db.create_users()
    sqlite_app_db.insert_user("u1")
    run = _run(_import(sqlite_app_db, sql=sql, incremental_column=incremental))

    assert run.status == ImportRunStatus.FAILED
    assert message in run.error_message
    assert "Nothing was written." in run.error_message
    assert sqlite_app_db.rows("SELECT id FROM users") == [("u1",)]


def test_a_timed_out_import_fails_and_keeps_its_mark(postgres_app_db: AppDatabase) -> None:
    postgres_app_db.create_users()
    postgres_app_db.insert_user("u1", version=1)
    profile_import = _import(postgres_app_db, sql="SELECT id AS distinct_id, version FROM users",
                             incremental_column="version")
    _run(profile_import)
    ProfileImport.objects.filter(pk=profile_import.pk).update(
        sql="SELECT id AS distinct_id, version, pg_sleep(3) AS slept FROM users"
    )
    profile_import.source.options = {"statement_timeout_seconds": 1}
    profile_import.source.save()

    run = _run(profile_import)

    assert (run.status, run.error_code) == (ImportRunStatus.FAILED, "statement_timeout")
    profile_import.refresh_from_db()
    assert profile_import.high_water_mark == {"type": "number", "value": 1}
    assert run.high_water_mark == {"type": "number", "value": 1}


def test_a_wrapped_query_keeps_percent_signs_and_trailing_comments(app_db: AppDatabase) -> None:
    app_db.create_users()
    app_db.insert_user("u1", email="100%@example.com", version=1)
    app_db.insert_user("u2", email="ben@example.com", version=2)
    sql = "SELECT id AS distinct_id, email, version FROM users WHERE email LIKE '100%' -- only the odd one"
    profile_import = _import(app_db, sql=sql, incremental_column="version")

    assert _run(profile_import).rows_read == 1
    assert _run(profile_import).rows_read == 1  # wrapped with the mark this time
    assert _properties("u1")["email"] == "100%@example.com"


def test_run_import_json_is_one_object_and_the_exit_code_says_failed(sqlite_app_db: AppDatabase) -> None:
    sqlite_app_db.create_users()
    sqlite_app_db.insert_user("u1", version=7)
    _import(sqlite_app_db, name="App users", incremental_column="version")
    _import(sqlite_app_db, name="Broken", sql="SELECT plan FROM users")
    out = io.StringIO()

    call_command("run_import", "App users", "--json", stdout=out)
    summary = json.loads(out.getvalue())

    assert summary["status"] == "succeeded"
    assert {key: summary[key] for key in ("rows_read", "created", "updated", "deleted", "rejected")} == {
        "rows_read": 1, "created": 1, "updated": 0, "deleted": 0, "rejected": 0}
    assert summary["high_water_mark"] == 7

    out = io.StringIO()
    with pytest.raises(SystemExit) as failed:
        call_command("run_import", "Broken", "--json", "--full", stdout=out)
    assert failed.value.code == 1
    summary = json.loads(out.getvalue())
    assert summary["status"] == "failed" and "distinct_id" in summary["error"]
    with pytest.raises(CommandError) as unknown:
        call_command("run_import", "Nope")
    assert unknown.value.returncode == 64
