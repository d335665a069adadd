"""Run actions: retry failed users, cancel, approve a guarded run (with a confirmation page)."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse
from django.utils import timezone

from syncs.models import RunStatus, Sync, SyncRun
from tests.factories import (
    CohortFactory,
    ProfileFactory,
    SyncedMemberFactory,
    SyncFactory,
    SyncRunFactory,
)
from tests.syncs.admin_helpers import action_names, messages_of, staff_client
from tests.syncs.fakes import Rejection, fake_connector_fixture  # noqa: F401  (the `fake` fixture)

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:syncs_syncrun_changelist")
MANAGE_ACTIONS = {"retry_failed_users", "cancel_run", "approve_guarded_run", "reject_guarded_run"}


@pytest.fixture
def pro_sync() -> Sync:
    cohort = CohortFactory(rules={"all": [{"property": "plan", "op": "eq", "value": "pro"}]})
    for n in range(3):
        ProfileFactory(properties={"$email": f"pro{n}@example.com", "plan": "pro"})
    return SyncFactory(cohort=cohort, identity_property="$email", name="Pro users")


def post_action(client, action: str, runs: list[SyncRun], **extra):
    data = {"action": action, ACTION_CHECKBOX_NAME: [r.pk for r in runs], **extra}
    return client.post(CHANGELIST, data, follow=True)


def run_url(run: SyncRun) -> str:
    return reverse("admin:syncs_syncrun_change", args=[run.pk])


def test_retry_failed_users_resends_only_them(admin_client, pro_sync, fake, django_capture_on_commit_callbacks):
    fake.reject = {"pro1@example.com": Rejection(code="606", message="Rejected", retriable=True)}
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("admin:syncs_sync_export_now", args=[pro_sync.pk]))
    first = SyncRun.objects.get(sync=pro_sync)
    assert first.status == RunStatus.PARTIAL and first.failed_adds == 1
    page = admin_client.get(run_url(first)).content.decode()
    assert reverse("admin:syncs_syncrun_retry", args=[first.pk]) in page
    assert "Rejected" in page

    fake.reject = {}
    fake.forget_pushes()
    with django_capture_on_commit_callbacks(execute=True):
        response = post_action(admin_client, "retry_failed_users", [first])

    retry = SyncRun.objects.get(retry_of=first)
    assert retry.trigger == SyncRun.Trigger.RETRY
    assert retry.status == RunStatus.SUCCEEDED
    assert fake.pushed_values() == {"pro1@example.com": True}
    assert f"requested: run #{retry.pk}." in " ".join(messages_of(response))


def test_retry_button_opens_the_new_run(admin_client, pro_sync, fake, django_capture_on_commit_callbacks):
    fake.reject = {"pro0@example.com": Rejection(retriable=True)}
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("admin:syncs_sync_export_now", args=[pro_sync.pk]))
    first = SyncRun.objects.get(sync=pro_sync)
    fake.reject = {}

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:syncs_syncrun_retry", args=[first.pk]))

    retry = SyncRun.objects.get(retry_of=first)
    assert response["Location"] == run_url(retry)


def test_retry_of_a_run_without_failures_says_so(admin_client, pro_sync):
    run = SyncRunFactory(sync=pro_sync, status=RunStatus.SUCCEEDED)

    response = post_action(admin_client, "retry_failed_users", [run])

    assert f"Run #{run.pk} not retried: Run #{run.pk} has no failed users to retry." in messages_of(response)
    assert SyncRun.objects.count() == 1


def test_cancel_queued_and_running_runs(admin_client, admin_user):
    queued = SyncRunFactory(status=RunStatus.QUEUED)
    running = SyncRunFactory(status=RunStatus.RUNNING, started_at=timezone.now(), heartbeat_at=timezone.now())
    finished = SyncRunFactory(status=RunStatus.SUCCEEDED)

    response = post_action(admin_client, "cancel_run", [queued, running, finished])

    queued.refresh_from_db()
    running.refresh_from_db()
    assert queued.status == RunStatus.CANCELLED and queued.cancelled_by == admin_user
    assert running.status == RunStatus.RUNNING and running.cancel_requested_at is not None
    text = " ".join(messages_of(response))
    assert f"Run #{queued.pk} of {queued.sync.name} cancelled before anything was sent." in text
    assert f"Run #{running.pk} of {running.sync.name} asked to stop" in text
    assert f"Run #{finished.pk} is already succeeded: nothing to cancel." in text


def test_cancel_button_on_the_run_page(admin_client):
    run = SyncRunFactory(status=RunStatus.QUEUED)
    url = reverse("admin:syncs_syncrun_cancel", args=[run.pk])
    assert url in admin_client.get(run_url(run)).content.decode()

    response = admin_client.post(url)

    run.refresh_from_db()
    assert response["Location"] == run_url(run)
    assert run.status == RunStatus.CANCELLED


@pytest.fixture
def guarded_run(pro_sync) -> SyncRun:
    """Six users left the cohort; the guard held the run back."""
    for n in range(3):
        SyncedMemberFactory(sync=pro_sync, identity_value=f"pro{n}@example.com", is_member=True)
    for n in range(6):
        SyncedMemberFactory(sync=pro_sync, identity_value=f"gone{n}@example.com", is_member=True)
    return SyncRunFactory(
        sync=pro_sync,
        status=RunStatus.AWAITING_APPROVAL,
        planned_removes=6,
        plan_sample={"add": [], "remove": [f"gone{n}@example.com" for n in range(6)]},
        error_code="removal_guard",
        error_message="6 of 9 members would be removed.",
    )


def test_approve_shows_a_confirmation_first(admin_client, guarded_run, fake):
    response = post_action(admin_client, "approve_guarded_run", [guarded_run])

    page = response.content.decode()
    assert response.templates[0].name == "admin/syncs/syncrun/approve_confirmation.html"
    assert "<strong>6</strong> users would be removed" in page
    assert "gone3@example.com" in page
    assert 'name="post" value="yes"' in page
    # Beyond the sample, every user of the plan is one click away.
    plan_csv = reverse("admin:syncs_syncrun_plan_csv", args=[guarded_run.pk])
    assert f'<a href="{plan_csv}">Download every user of the plan (CSV)</a>' in page
    guarded_run.refresh_from_db()
    assert guarded_run.status == RunStatus.AWAITING_APPROVAL
    assert fake.pushed == []


def test_approve_confirmed_sends_the_removals(admin_client, admin_user, guarded_run, fake,
                                             django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_action(admin_client, "approve_guarded_run", [guarded_run], post="yes")

    guarded_run.refresh_from_db()
    assert guarded_run.approved_by == admin_user
    assert guarded_run.status == RunStatus.SUCCEEDED
    assert guarded_run.succeeded_removes == 6
    assert fake.pushed_values() == {f"gone{n}@example.com": False for n in range(6)}
    assert f"Run #{guarded_run.pk} of Pro users approved" in " ".join(messages_of(response))


def test_approve_page_for_one_run(admin_client, guarded_run, fake, django_capture_on_commit_callbacks):
    url = reverse("admin:syncs_syncrun_approve", args=[guarded_run.pk])
    assert url in admin_client.get(run_url(guarded_run)).content.decode()
    assert "gone0@example.com" in admin_client.get(url).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"post": "yes"})

    assert response["Location"] == run_url(guarded_run)
    guarded_run.refresh_from_db()
    assert guarded_run.status == RunStatus.SUCCEEDED


def test_approving_a_run_not_awaiting_approval_is_refused(admin_client):
    run = SyncRunFactory(status=RunStatus.SUCCEEDED)

    response = post_action(admin_client, "approve_guarded_run", [run], post="yes")

    assert "not awaiting approval: nothing to approve" in " ".join(messages_of(response))
    run.refresh_from_db()
    assert run.approved_by is None


def test_staff_without_manage_permission_cannot_act(guarded_run):
    client = staff_client(["syncs.view_syncrun", "syncs.view_sync"])

    assert MANAGE_ACTIONS.isdisjoint(action_names(client.get(CHANGELIST)))
    page = client.get(run_url(guarded_run)).content.decode()
    assert reverse("admin:syncs_syncrun_approve", args=[guarded_run.pk]) not in page
    for name in ("approve", "cancel", "retry"):
        url = reverse(f"admin:syncs_syncrun_{name}", args=[guarded_run.pk])
        assert client.post(url, {"post": "yes"}).status_code == 403
    post_action(client, "cancel_run", [guarded_run])
    guarded_run.refresh_from_db()
    assert guarded_run.status == RunStatus.AWAITING_APPROVAL


def test_staff_with_manage_permission_sees_the_actions():
    client = staff_client(["syncs.view_syncrun", "syncs.manage_run"])

    assert MANAGE_ACTIONS <= set(action_names(client.get(CHANGELIST)))
