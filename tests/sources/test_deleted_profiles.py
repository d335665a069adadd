"""A deleted profile leaves its cohorts: the next run of every sync removes it from the
destination (false, or "exited"), however it was deleted, for every destination kind."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.cache import cache
from django.test import Client

from api.services import api_token_create
from cohorts.models import Profile
from sources.models import ImportRun, ProfileImport
from sources.services import import_run_create, import_run_process
from syncs.models import RunStatus
from tests.factories import ProfileImportFactory, SyncFactory, UserFactory
from tests.sources.conftest import AppDatabase
from tests.syncs.fakes import run_now, synced_state
from tests.syncs.test_end_to_end import KINDS, Kind

pytestmark = [pytest.mark.django_db, pytest.mark.e2e]

EMAILS = ["ana@example.com", "ben@example.com", "chloe@example.com"]


def _by_api(distinct_id: str, **_: object) -> None:
    token = api_token_create(name="App").plaintext
    answer = Client().delete(f"/api/v1/profiles/{distinct_id}", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert answer.status_code == 200


def _in_the_admin(distinct_id: str, **_: object) -> None:
    client = Client()
    client.force_login(UserFactory(is_superuser=True))
    profile = Profile.objects.get(distinct_id=distinct_id)
    answer = client.post("/admin/cohorts/profile/", {"action": "delete_selected", ACTION_CHECKBOX_NAME: [profile.pk],
                                                     "post": "yes"})
    assert answer.status_code == 302


def _by_delete_missing(distinct_id: str, *, app_db: AppDatabase) -> None:
    app_db.execute("DELETE FROM users WHERE id = %s", [distinct_id])
    run = import_run_process(run_id=import_run_create(
        profile_import=ProfileImport.objects.get(), trigger=ImportRun.Trigger.CLI).pk)
    assert run.deleted == 1, run.error_message


DELETIONS: dict[str, Callable[..., None]] = {
    "api": _by_api,
    "admin": _in_the_admin,
    "delete_missing": _by_delete_missing,
}


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: str(k.kind))
@pytest.mark.parametrize("how", list(DELETIONS))
def test_a_deleted_profile_is_removed_by_the_next_run(kind: Kind, how: str, sandbox, sqlite_app_db) -> None:
    cache.clear()
    if how == "delete_missing":
        sqlite_app_db.create_users()
        for number, email in enumerate(EMAILS):
            sqlite_app_db.insert_user(f"user-{number}", email=email, plan="pro")
        profile_import = ProfileImportFactory(source=sqlite_app_db.source(), delete_missing=True)
        assert import_run_process(
            run_id=import_run_create(profile_import=profile_import, trigger=ImportRun.Trigger.CLI).pk
        ).created == 3
    else:
        for number, email in enumerate(EMAILS):
            Profile.objects.create(distinct_id=f"user-{number}", properties={"$email": email, "plan": "pro"})
    sync = SyncFactory(destination=kind.destination(sandbox), target_field=kind.field)
    first = run_now(sync)
    assert first.status == RunStatus.SUCCEEDED, first.error_message
    assert kind.written(sandbox) == dict.fromkeys(EMAILS, kind.member)

    DELETIONS[how]("user-1", app_db=sqlite_app_db)
    assert not Profile.objects.filter(distinct_id="user-1").exists()
    after = run_now(sync)

    assert after.status == RunStatus.SUCCEEDED, after.error_message
    assert (after.succeeded_adds, after.succeeded_removes) == (0, 1)
    assert kind.written(sandbox)[EMAILS[1]] == kind.exited
    assert synced_state(sync) == {EMAILS[0]: True, EMAILS[1]: False, EMAILS[2]: True}

