"""`apply` with sources, profile imports and SQL cohorts: created, idempotent, errors that
name the entry and the field, secrets never shown."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from django_q.models import Schedule

from cohorts.models import Cohort
from sources.models import ProfileImport, Source, SourceKind
from sources.schedules import import_schedule_name
from syncs.config_as_code import config_apply
from tests.factories import ProfileImportFactory, SourceFactory

pytestmark = pytest.mark.django_db

ENV = {"APP_DB_PASSWORD": "s3cret-from-env", "APP_DB_URL": "mysql://reader:in-url-pw@db.internal:3306/app"}


def document() -> dict[str, Any]:
    return {
        "sources": [
            {"name": "App DB", "url": "postgres://reader@db.internal:5432/app",
             "password": {"env": "APP_DB_PASSWORD"}, "options": {"statement_timeout_seconds": 60}},
            {"name": "Legacy", "url": {"env": "APP_DB_URL"}},
        ],
        "profile_imports": [
            {"name": "Users", "source": "App DB",
             "sql": 'SELECT id AS distinct_id, email AS "$email", plan, updated_at FROM users',
             "every_minutes": 5, "incremental_column": "updated_at"},
            {"name": "Accounts", "source": "Legacy", "sql": "SELECT id AS distinct_id FROM accounts",
             "delete_missing": True},
        ],
        "cohorts": [
            {"name": "Team accounts", "source": "App DB",
             "sql": "SELECT id AS distinct_id FROM users WHERE plan = 'team'"},
        ],
    }


def apply(doc: Any, *, dry_run: bool = False) -> Any:
    return config_apply(document=doc, environ=ENV, dry_run=dry_run)


def test_creates_sources_imports_and_sql_cohorts(django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        report = apply(document())

    assert report.ok, report.errors
    app = Source.objects.get(name="App DB")
    assert (app.kind, app.url, app.password) == (SourceKind.POSTGRESQL, "postgres://reader@db.internal:5432/app",
                                                 "s3cret-from-env")
    assert app.options == {"statement_timeout_seconds": 60}
    legacy = Source.objects.get(name="Legacy")
    assert (legacy.kind, legacy.url, legacy.password) == (SourceKind.MYSQL, "mysql://reader@db.internal:3306/app",
                                                          "in-url-pw")
    users = ProfileImport.objects.get(name="Users")
    assert (users.source, users.every_minutes, users.incremental_column, users.delete_missing) == (
        app, 5, "updated_at", False)
    assert ProfileImport.objects.get(name="Accounts").delete_missing is True
    cohort = Cohort.objects.get(name="Team accounts")
    assert (cohort.kind, cohort.source, cohort.rules) == (Cohort.Kind.SQL, app, None)
    # Scheduled imports get their schedule after the commit; unscheduled ones none.
    assert Schedule.objects.get(name=import_schedule_name(users.pk)).minutes == 5
    assert not Schedule.objects.filter(name=import_schedule_name(ProfileImport.objects.get(name="Accounts").pk)).exists()
    text = "\n".join(report.lines())
    assert 'source "App DB": created' in text and 'profile_import "Users": created' in text
    assert "s3cret" not in text and "in-url-pw" not in text


def test_applying_twice_changes_nothing_and_keeps_the_encrypted_password() -> None:
    assert apply(document()).ok
    stored = Source.objects.filter(name="App DB").values_list("password", flat=True).get()

    report = apply(document())

    assert report.ok and report.totals == {"created": 0, "updated": 0, "unchanged": 5}
    assert Source.objects.filter(name="App DB").values_list("password", flat=True).get() == stored


def test_changes_are_named_and_a_changed_query_resets_the_high_water_mark() -> None:
    assert apply(document()).ok
    ProfileImport.objects.filter(name="Users").update(high_water_mark={"type": "number", "value": 9})
    changed = document()
    changed["profile_imports"][0]["sql"] += " WHERE active"
    changed["sources"][0]["password"] = "a-new-one"
    changed["cohorts"][0]["sql"] = "SELECT id AS distinct_id FROM users WHERE plan = 'enterprise'"

    report = apply(changed)

    assert report.ok, report.errors
    lines = report.lines()
    assert 'source "App DB": updated (password)' in lines
    assert 'profile_import "Users": updated (sql)' in lines
    assert 'cohort "Team accounts": updated (sql)' in lines
    assert ProfileImport.objects.get(name="Users").high_water_mark is None
    assert Source.objects.get(name="App DB").password == "a-new-one"


def test_an_existing_source_may_be_referenced_and_a_cohort_can_stop_being_sql() -> None:
    SourceFactory(name="Warehouse")
    doc = {"cohorts": [{"name": "Big spenders", "source": "Warehouse", "sql": "SELECT id FROM spend"}]}
    assert apply(doc).ok
    assert apply({"cohorts": [{"name": "Big spenders", "members": ["u1"]}]}).ok

    cohort = Cohort.objects.get(name="Big spenders")
    assert (cohort.kind, cohort.source, cohort.sql) == (Cohort.Kind.STATIC, None, "")


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("sources", 0, "url"), "mssql://x@y/z", 'sources[0] "App DB": url: \'mssql\' databases are not supported'),
        (("sources", 0, "url"), None, 'sources[0] "App DB": url: is required'),
        (("sources", 0, "kind"), "mysql", 'sources[0] "App DB": kind: is mysql but the URL is a postgresql URL'),
        (("sources", 0, "password"), {"env": "NOPE"}, 'sources[0] "App DB": password: environment variable NOPE'),
        (("sources", 0, "options"), {"statement_timeout_seconds": 0},
         'sources[0] "App DB": options: statement_timeout_seconds must be a number of seconds'),
        (("sources", 0, "options"), {"time_zone": "Mars/Olympus"}, "options: time_zone must be a time zone name"),
        (("sources", 1, "url"), "mysql://u:pw@h/db?x=1", None),
        (("profile_imports", 0, "sql"), "DELETE FROM users", 'profile_imports[0] "Users": sql: Only SELECT'),
        (("profile_imports", 0, "sql"), "SELECT 1; SELECT 2", "sql: The query holds 2 statements"),
        (("profile_imports", 0, "source"), "Nowhere",
         'profile_imports[0] "Users": source: no source named "Nowhere"'),
        (("profile_imports", 0, "every_minutes"), 0, "every_minutes: must be a whole number of minutes"),
        (("profile_imports", 0, "delete_missing"), "yes", "delete_missing: must be true or false"),
        (("profile_imports", 0, "schedule"), 5, "schedule: unknown key"),
        (("cohorts", 0, "source"), None, 'cohorts[0] "Team accounts": source: is required with "sql"'),
        (("cohorts", 0, "sql"), "UPDATE users SET plan = 'x'", 'cohorts[0] "Team accounts": sql: Only SELECT'),
        (("cohorts", 0, "rules"), {"all": []}, 'cohorts[0] "Team accounts": rules: give exactly one of'),
    ],
)
def test_each_error_names_the_entry_and_the_field(path: tuple[Any, ...], value: Any, expected: str | None) -> None:
    doc = copy.deepcopy(document())
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value

    report = apply(doc)

    if expected is None:
        assert report.ok, report.errors
        return
    assert not report.ok
    assert any(expected in error for error in report.errors), report.errors
    assert not Source.objects.exists() and not ProfileImport.objects.exists()


def test_a_reference_to_an_invalid_source_is_not_reported_twice() -> None:
    doc = document()
    doc["sources"][0]["url"] = "nope"
    report = apply(doc)
    assert [e for e in report.errors if "App DB" in e and "source:" in e] == []
    assert any(e.startswith('sources[0] "App DB": url:') for e in report.errors)


def test_an_import_moved_to_another_source_is_updated() -> None:
    assert apply(document()).ok
    ProfileImportFactory(name="Other")
    doc = document()
    doc["profile_imports"][1]["source"] = "App DB"
    report = apply(doc)
    assert 'profile_import "Accounts": updated (source)' in report.lines()
    assert ProfileImport.objects.get(name="Accounts").source.name == "App DB"
