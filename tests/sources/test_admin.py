"""The admin as staff use it: sources (password never shown again, Test connection), imports
(Run now, every run visible), SQL cohorts (Refresh now, count and sample), API tokens."""

from __future__ import annotations

import re

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from api.models import ApiToken
from cohorts.models import Cohort
from sources.models import ImportRun, ImportRunStatus, ProfileImport, Source
from tests.factories import ProfileFactory, ProfileImportFactory, SqlCohortFactory
from tests.sources.conftest import AppDatabase
from tests.syncs.admin_helpers import messages_of, staff_client

pytestmark = pytest.mark.django_db


def _action(client, model: str, action: str, pks: list[int]):  # type: ignore[no-untyped-def]
    return client.post(reverse(f"admin:{model}_changelist"), {"action": action, ACTION_CHECKBOX_NAME: pks},
                       follow=True)


def test_a_source_added_with_a_password_in_its_url_never_shows_it_again(admin_client) -> None:
    response = admin_client.post(reverse("admin:sources_source_add"), {
        "name": "App DB", "url": "postgres://reader:Pa55-w0rd@db.internal:5432/app", "new_password": "",
        "options": '{"statement_timeout_seconds": 60}',
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    source = Source.objects.get(name="App DB")
    assert (source.kind, source.url, source.password) == ("postgresql", "postgres://reader@db.internal:5432/app",
                                                          "Pa55-w0rd")

    page = admin_client.get(reverse("admin:sources_source_change", args=[source.pk])).content.decode()
    assert "Pa55-w0rd" not in page and "Stored password" in page
    assert "Pa55-w0rd" not in admin_client.get(reverse("admin:sources_source_changelist")).content.decode()

    # Saving without a password keeps the stored one.
    admin_client.post(reverse("admin:sources_source_change", args=[source.pk]), {
        "name": "App DB", "url": "postgres://reader@db.internal:5432/app", "new_password": "", "options": "{}"})
    assert Source.objects.get(pk=source.pk).password == "Pa55-w0rd"


def test_a_bad_url_or_option_is_explained_on_the_form(admin_client) -> None:
    response = admin_client.post(reverse("admin:sources_source_add"), {
        "name": "Bad", "url": "oracle://x@y/z", "options": '{"statement_timeout_seconds": -1}'})
    page = response.content.decode()
    assert response.status_code == 200
    assert "&#x27;oracle&#x27; databases are not supported" in page
    assert "statement_timeout_seconds must be a number of seconds" in page
    assert not Source.objects.exists()


def test_test_connection_reports_and_records(admin_client, sqlite_app_db: AppDatabase, tmp_path) -> None:
    good = sqlite_app_db.source(name="Good")
    bad = Source.objects.create(name="Bad", kind="sqlite", url=f"sqlite:///{tmp_path}/missing.db")

    response = _action(admin_client, "sources_source", "test_connection", [good.pk, bad.pk])

    shown = messages_of(response)
    assert any(m.startswith("Good: Connected: SQLite") for m in shown), shown
    assert any(m.startswith("Bad: There is no SQLite database") for m in shown), shown
    assert Source.objects.get(pk=good.pk).is_connected is True
    assert Source.objects.get(pk=bad.pk).is_connected is False


def test_run_now_needs_the_permission_and_the_run_page_shows_rejects(
    sqlite_app_db: AppDatabase, django_capture_on_commit_callbacks
) -> None:
    sqlite_app_db.create_users()
    sqlite_app_db.insert_user("u1")
    sqlite_app_db.insert_user(" ")
    profile_import = ProfileImportFactory(source=sqlite_app_db.source(), sql="SELECT id AS distinct_id FROM users")
    viewer = staff_client(["sources.view_profileimport"])
    page = viewer.get(reverse("admin:sources_profileimport_changelist")).content.decode()
    assert "run_now" not in page

    runner = staff_client(["sources.view_profileimport", "sources.run_import", "sources.view_importrun"])
    with django_capture_on_commit_callbacks(execute=True):
        response = _action(runner, "sources_profileimport", "run_now", [profile_import.pk])

    run = ImportRun.objects.get()
    assert run.status == ImportRunStatus.SUCCEEDED, run.error_message
    assert (run.trigger, run.created, run.rejected) == (ImportRun.Trigger.MANUAL, 1, 1)
    assert any(f">#{run.pk}</a> queued" in m for m in messages_of(response))
    detail = runner.get(reverse("admin:sources_importrun_change", args=[run.pk])).content.decode()
    assert "distinct_id is empty" in detail
    listing = runner.get(reverse("admin:sources_importrun_changelist")).content.decode()
    assert f"Import run #{run.pk}" in listing


def test_saving_an_import_with_a_new_query_resets_its_mark(admin_client) -> None:
    profile_import = ProfileImportFactory(incremental_column="version", high_water_mark={"type": "number", "value": 3})
    data = {"name": profile_import.name, "source": profile_import.source_id,
            "sql": "SELECT id AS distinct_id, version FROM users WHERE active", "every_minutes": "10",
            "incremental_column": "version", "enabled": "on"}
    response = admin_client.post(reverse("admin:sources_profileimport_change", args=[profile_import.pk]), data)
    assert response.status_code == 302
    assert ProfileImport.objects.get(pk=profile_import.pk).high_water_mark is None

    data["sql"] = "UPDATE users SET plan = 'x'"
    page = admin_client.post(reverse("admin:sources_profileimport_change", args=[profile_import.pk]), data)
    assert "Only SELECT" in page.content.decode()


def test_an_sql_cohort_is_refreshed_on_save_and_by_refresh_now(admin_client, sqlite_app_db: AppDatabase) -> None:
    sqlite_app_db.create_users()
    for user_id, plan in (("u1", "team"), ("u2", "free")):
        sqlite_app_db.insert_user(user_id, plan=plan)
        ProfileFactory(distinct_id=user_id)
    source = sqlite_app_db.source()
    response = admin_client.post(reverse("admin:cohorts_cohort_add"), {
        "name": "Team", "kind": "sql", "description": "", "rules": "", "source": source.pk,
        "sql": "SELECT id AS distinct_id FROM users WHERE plan = 'team'", "members_text": ""}, follow=True)
    assert "“Team” refreshed: its query returned 1 distinct ids." in messages_of(response)
    cohort = Cohort.objects.get(name="Team")
    page = admin_client.get(reverse("admin:cohorts_cohort_change", args=[cohort.pk])).content.decode()
    assert "1 profiles match right now" in page and ">u1<" in page

    sqlite_app_db.execute("UPDATE users SET plan = 'team'")
    response = _action(admin_client, "cohorts_cohort", "refresh_now", [cohort.pk])
    assert "“Team” refreshed: its query returned 2 distinct ids." in messages_of(response)

    sqlite_app_db.execute("DROP TABLE users")
    response = _action(admin_client, "cohorts_cohort", "refresh_now", [cohort.pk])
    assert any("could not be refreshed" in m and "users" in m for m in messages_of(response))
    page = admin_client.get(reverse("admin:cohorts_cohort_change", args=[cohort.pk])).content.decode()
    assert "Failed: The source refused the query" in page


def test_an_sql_cohort_form_needs_a_source_and_one_select(admin_client) -> None:
    response = admin_client.post(reverse("admin:cohorts_cohort_add"), {
        "name": "Bad", "kind": "sql", "description": "", "rules": "", "source": "",
        "sql": "DELETE FROM users", "members_text": "u1"})
    page = response.content.decode()
    assert "An SQL cohort needs the source its query runs on." in page
    assert "Only SELECT" in page
    assert "Listed members apply only to static cohorts." in page
    assert not Cohort.objects.exists()
    assert SqlCohortFactory().kind == "sql"


def test_an_api_token_is_shown_once_and_stored_hashed(admin_client) -> None:
    response = admin_client.post(reverse("admin:api_apitoken_add"), {"name": "Web app"})

    assert response.status_code == 200
    plaintext = re.search(r'id="api-token"[^>]*>(cs_[\w-]+)<', response.content.decode()).group(1)
    token = ApiToken.objects.get(name="Web app")
    assert plaintext.startswith(token.prefix) and plaintext != token.token_hash
    page = admin_client.get(reverse("admin:api_apitoken_change", args=[token.pk])).content.decode()
    assert plaintext not in page
    assert plaintext not in admin_client.get(reverse("admin:api_apitoken_changelist")).content.decode()

    _action(admin_client, "api_apitoken", "revoke", [token.pk])
    token.refresh_from_db()
    assert token.revoked_at is not None
