"""Retrying a run's failed users: retriable failures by default, the others on request,
and never the users the original run skipped."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from syncs.models import RunStatus, SyncFailure, SyncRun
from syncs.services import SyncRunStateError, sync_run_execute, sync_run_retry_failed
from tests.factories import SyncFactory
from tests.syncs.admin_helpers import messages_of
from tests.syncs.fakes import (
    FakeConnector,
    Rejection,
    fake_connector_fixture,  # noqa: F401  (the `fake` fixture)
    pro_profile,
    run_now,
    synced_state,
)

pytestmark = pytest.mark.django_db

THROTTLED = Rejection(code="606", message="Max rate limit exceeded.", retriable=True)
INVALID = Rejection(code="1003", message="Value for field is invalid.", retriable=False)


@pytest.fixture
def partial_run(fake: FakeConnector) -> SyncRun:
    """A run where one user was throttled (retriable), one refused (not) and one skipped."""
    for email in ("ok@example.com", "slow@example.com", "bad@example.com"):
        pro_profile(email)
    pro_profile(None)  # no email: skipped before sending
    fake.reject = {"slow@example.com": THROTTLED, "bad@example.com": INVALID}
    run = run_now(SyncFactory())
    assert (run.status, run.failed_adds, run.skipped_users) == (RunStatus.PARTIAL, 2, 1)
    fake.reject = {}
    fake.forget_pushes()
    return run


def test_retry_sends_only_retriable_failures_by_default(partial_run: SyncRun, fake: FakeConnector) -> None:
    retry = sync_run_execute(run_id=sync_run_retry_failed(run=partial_run, requested_by=None).pk)

    assert fake.pushed_values() == {"slow@example.com": True}
    assert retry.status == RunStatus.SUCCEEDED and retry.retry_non_retriable is False
    assert synced_state(partial_run.sync) == {"ok@example.com": True, "slow@example.com": True}


def test_retry_all_also_sends_the_failures_refused_for_good(partial_run: SyncRun, fake: FakeConnector) -> None:
    retry = sync_run_retry_failed(run=partial_run, requested_by=None, non_retriable=True)
    retry = sync_run_execute(run_id=retry.pk)

    assert fake.pushed_values() == {"slow@example.com": True, "bad@example.com": True}
    assert retry.retry_non_retriable is True and retry.succeeded_adds == 2


def test_a_retry_does_not_report_the_original_runs_skips_again(partial_run: SyncRun) -> None:
    retry = sync_run_execute(run_id=sync_run_retry_failed(run=partial_run, requested_by=None).pk)

    assert retry.skipped_users == 0
    assert not SyncFailure.objects.filter(run=retry).exists()
    assert SyncFailure.objects.filter(run=partial_run, operation=SyncFailure.Operation.SKIP).count() == 1


def test_only_permanent_failures_ask_for_the_second_action(fake: FakeConnector) -> None:
    pro_profile("bad@example.com")
    fake.reject = {"bad@example.com": INVALID}
    run = run_now(SyncFactory())

    with pytest.raises(SyncRunStateError) as refused:
        sync_run_retry_failed(run=run, requested_by=None)

    assert str(refused.value) == (
        f"Run #{run.pk} has no retriable failures: 1 failed user was refused for a reason a "
        "retry does not change. Fix the cause, then use “Retry all failed users” to send them again."
    )
    assert not SyncRun.objects.filter(retry_of=run).exists()


# --- Admin -------------------------------------------------------------------------------


def test_the_run_page_offers_each_retry_it_can_do(admin_client, partial_run: SyncRun) -> None:
    page = admin_client.get(reverse("admin:syncs_syncrun_change", args=[partial_run.pk])).content.decode()

    assert ">Retry failed users</button>" in page
    assert ">Retry all failed users</button>" in page
    assert 'name="non_retriable" value="1"' in page


def test_retry_all_from_the_run_page_and_from_the_list(admin_client, partial_run: SyncRun, fake,
                                                       django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:syncs_syncrun_retry", args=[partial_run.pk]),
                                     {"non_retriable": "1"})
    retry = SyncRun.objects.get(retry_of=partial_run)
    assert response["Location"] == reverse("admin:syncs_syncrun_change", args=[retry.pk])
    assert retry.retry_non_retriable and fake.pushed_values() == {"slow@example.com": True, "bad@example.com": True}

    fake.forget_pushes()
    changelist = reverse("admin:syncs_syncrun_changelist")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(changelist, {"action": "retry_failed_users",
                                                  ACTION_CHECKBOX_NAME: [partial_run.pk]}, follow=True)
    assert f"Retry of the retriable failed users of run #{partial_run.pk}" in " ".join(messages_of(response))
    assert fake.pushed_values() == {}  # both were acknowledged by the first retry
