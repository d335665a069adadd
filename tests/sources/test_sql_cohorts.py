"""SQL cohorts: distinct ids read from a source, stored like a static list, refreshed before
every run of a sync; a failed refresh fails the run and sends nothing."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from cohorts.models import Cohort, StaticMembership
from cohorts.selectors import cohort_members
from sources.connections import SourceError
from sources.models import ImportRun
from sources.services import cohort_refresh, import_run_create, import_run_process
from syncs.models import RunStatus
from tests.factories import (
    DestinationFactory,
    ProfileFactory,
    ProfileImportFactory,
    SqlCohortFactory,
    SyncFactory,
)
from tests.sources.conftest import AppDatabase
from tests.syncs.fakes import run_now, synced_state

pytestmark = pytest.mark.django_db

PRO_IDS = "SELECT id AS distinct_id FROM users WHERE plan = 'pro'"
DE_KEY = "CohortSync_Demo"
FIELD = "Sql_Pro_Users"


def _listed(cohort: Cohort) -> set[str]:
    return set(StaticMembership.objects.filter(cohort=cohort).values_list("distinct_id", flat=True))


def test_a_refresh_stores_the_ids_and_members_are_the_profiles_among_them(app_db: AppDatabase) -> None:
    app_db.create_users()
    for user_id, plan in (("u1", "pro"), ("u2", "pro"), ("u3", "free"), ("no-profile", "pro")):
        app_db.insert_user(user_id, plan=plan)
    for user_id in ("u1", "u2", "u3"):
        ProfileFactory(distinct_id=user_id)
    cohort = SqlCohortFactory(source=app_db.source(), sql=PRO_IDS)

    assert cohort_refresh(cohort=cohort) == 3

    assert _listed(cohort) == {"u1", "u2", "no-profile"}
    assert set(cohort_members(cohort).values_list("distinct_id", flat=True)) == {"u1", "u2"}
    cohort.refresh_from_db()
    assert cohort.refreshed_at is not None and cohort.refresh_error == ""


def test_a_single_column_of_numbers_is_a_list_of_ids(sqlite_app_db: AppDatabase) -> None:
    sqlite_app_db.execute("CREATE TABLE accounts (account_id INTEGER)")
    for number in (10, 11, 11):
        sqlite_app_db.execute("INSERT INTO accounts VALUES (%s)", [number])
    cohort = SqlCohortFactory(source=sqlite_app_db.source(), sql="SELECT account_id FROM accounts")

    assert cohort_refresh(cohort=cohort) == 2
    assert _listed(cohort) == {"10", "11"}


def test_a_failed_refresh_keeps_the_members_and_says_why(sqlite_app_db: AppDatabase) -> None:
    sqlite_app_db.create_users()
    sqlite_app_db.insert_user("u1", plan="pro")
    cohort = SqlCohortFactory(source=sqlite_app_db.source(), sql=PRO_IDS)
    cohort_refresh(cohort=cohort)
    Cohort.objects.filter(pk=cohort.pk).update(sql="SELECT id, plan FROM users")
    cohort.refresh_from_db()

    with pytest.raises(SourceError) as caught:
        cohort_refresh(cohort=cohort)

    assert "none is called distinct_id" in caught.value.message
    assert _listed(cohort) == {"u1"}
    cohort.refresh_from_db()
    assert "none is called distinct_id" in cohort.refresh_error


@pytest.fixture
def fresh_tokens() -> None:
    cache.clear()  # destination tokens live in the process-wide cache


def test_an_sql_cohort_synced_end_to_end_to_the_sandbox(app_db: AppDatabase, sandbox, fresh_tokens) -> None:
    app_db.create_users()
    for user_id, plan in (("u1", "pro"), ("u2", "pro"), ("u3", "free")):
        app_db.insert_user(user_id, email=f"{user_id}@example.com", plan=plan)
    source = app_db.source()
    # The profiles themselves come from the same application database.
    profile_import = ProfileImportFactory(source=source)
    assert import_run_process(
        run_id=import_run_create(profile_import=profile_import, trigger=ImportRun.Trigger.CLI).pk
    ).created == 3
    cohort = SqlCohortFactory(source=source, sql=PRO_IDS)
    destination = DestinationFactory(auth_base_url=sandbox.sfmc_auth_base_url, client_id="sandbox-client-id",
                                     client_secret="sandbox-client-secret", data_extension_key=DE_KEY,
                                     key_column="SubscriberKey", options={"requests_per_second": 1000})
    sync = SyncFactory(cohort=cohort, destination=destination, target_field=FIELD,
                       identity_property="$distinct_id")

    def written() -> dict[str, object]:
        return {row["SubscriberKey"]: row[FIELD] for row in sandbox.sandboxes.sfmc.rows(DE_KEY) if FIELD in row}

    first = run_now(sync)
    assert first.status == RunStatus.SUCCEEDED, first.error_message
    assert written() == {"u1": True, "u2": True}

    # The application changes: u2 downgrades, u3 upgrades. Nobody touches CohortSync.
    app_db.execute("UPDATE users SET plan = 'free' WHERE id = 'u2'")
    app_db.execute("UPDATE users SET plan = 'pro' WHERE id = 'u3'")
    second = run_now(sync)

    assert second.status == RunStatus.SUCCEEDED, second.error_message
    assert (second.succeeded_adds, second.succeeded_removes) == (1, 1)
    assert written() == {"u1": True, "u2": False, "u3": True}

    # The query breaks (the table is renamed): the run fails with the source's words.
    app_db.execute("ALTER TABLE users RENAME TO customers")
    rows_before = sandbox.sandboxes.sfmc.rows(DE_KEY)
    failed = run_now(sync)

    assert (failed.status, failed.error_code) == (RunStatus.FAILED, "cohort_refresh_failed")
    assert f"The SQL cohort '{cohort.name}' could not be refreshed from its source" in failed.error_message
    assert "users" in failed.error_message and failed.error_message.endswith("Nothing was sent.")
    assert (failed.planned_adds, failed.planned_removes, failed.api_calls) == (0, 0, 0)
    assert sandbox.sandboxes.sfmc.rows(DE_KEY) == rows_before
    assert synced_state(sync) == {"u1": True, "u2": False, "u3": True}
