"""Sync actions and change-page buttons: they request runs through the services, report
conflicts, and are refused to staff without "Can export and sync cohorts"."""

from __future__ import annotations

import pytest
from django.urls import reverse

from syncs.models import RunStatus, Sync, SyncRun
from tests.factories import CohortFactory, ProfileFactory, SyncFactory, SyncRunFactory
from tests.syncs.admin_helpers import action_names, messages_of, staff_client
from tests.syncs.fakes import fake_connector_fixture  # noqa: F401  (the `fake` fixture)

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:syncs_sync_changelist")
RUN_ACTIONS = {"export_now", "dry_run", "full_resync"}
SCHEDULE_ACTIONS = {"enable_dynamic_sync", "disable_dynamic_sync"}


@pytest.fixture
def pro_sync() -> Sync:
    """A sync whose cohort has three members with an email."""
    cohort = CohortFactory(rules={"all": [{"property": "plan", "op": "eq", "value": "pro"}]})
    for n in range(3):
        ProfileFactory(properties={"$email": f"pro{n}@example.com", "plan": "pro"})
    ProfileFactory(properties={"$email": "free@example.com", "plan": "free"})
    return SyncFactory(cohort=cohort, identity_property="$email", name="Pro users")


def post_action(client, action: str, syncs: list[Sync], **extra):
    data = {"action": action, "_selected_action": [s.pk for s in syncs], **extra}
    return client.post(CHANGELIST, data, follow=True)


def test_export_now_runs_the_sync(admin_client, pro_sync, fake, django_capture_on_commit_callbacks, admin_user):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_action(admin_client, "export_now", [pro_sync])

    run = SyncRun.objects.get(sync=pro_sync)
    assert run.status == RunStatus.SUCCEEDED
    assert run.trigger == SyncRun.Trigger.MANUAL
    assert run.triggered_by == admin_user
    assert run.succeeded_adds == 3
    assert fake.pushed_values() == {f"pro{n}@example.com": True for n in range(3)}
    assert f"Export requested for 1 sync: Pro users (run #{run.pk})." in messages_of(response)


def test_dry_run_sends_nothing(admin_client, pro_sync, fake, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_action(admin_client, "dry_run", [pro_sync])

    run = SyncRun.objects.get(sync=pro_sync)
    assert run.is_dry_run is True
    assert run.planned_adds == 3
    assert fake.pushed == []
    assert any(m.startswith("Dry run requested") for m in messages_of(response))


def test_full_resync_is_flagged(admin_client, pro_sync, fake, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post_action(admin_client, "full_resync", [pro_sync])

    run = SyncRun.objects.get(sync=pro_sync)
    assert run.is_full_resync is True
    assert run.status == RunStatus.SUCCEEDED


def test_conflict_is_reported_and_nothing_queued(admin_client, pro_sync, fake, django_capture_on_commit_callbacks):
    busy = SyncRunFactory(sync=pro_sync, status=RunStatus.RUNNING)
    other = SyncFactory(name="Other", cohort=pro_sync.cohort)

    with django_capture_on_commit_callbacks(execute=True):
        response = post_action(admin_client, "export_now", [pro_sync, other])

    text = " ".join(messages_of(response))
    assert "already has a queued or running run" in text
    assert f"run #{busy.pk}" in text
    assert "Export requested for 1 sync: Other" in text
    assert list(SyncRun.objects.filter(sync=pro_sync)) == [busy]


def test_change_page_buttons_run_and_redirect_to_the_run(admin_client, pro_sync, fake,
                                                          django_capture_on_commit_callbacks):
    page = admin_client.get(reverse("admin:syncs_sync_change", args=[pro_sync.pk])).content.decode()
    export_url = reverse("admin:syncs_sync_export_now", args=[pro_sync.pk])
    dry_url = reverse("admin:syncs_sync_dry_run", args=[pro_sync.pk])
    assert export_url in page and dry_url in page

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(dry_url)
    run = SyncRun.objects.get(sync=pro_sync)
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:syncs_syncrun_change", args=[run.pk])
    assert run.is_dry_run and run.status == RunStatus.SUCCEEDED

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(export_url)
    assert SyncRun.objects.filter(sync=pro_sync, is_dry_run=False, status=RunStatus.SUCCEEDED).count() == 1


def test_buttons_are_post_only(admin_client, pro_sync):
    response = admin_client.get(reverse("admin:syncs_sync_export_now", args=[pro_sync.pk]))

    assert response.status_code == 405
    assert not SyncRun.objects.exists()


def test_button_conflict_returns_to_the_sync_with_a_message(admin_client, pro_sync):
    SyncRunFactory(sync=pro_sync, status=RunStatus.QUEUED)

    response = admin_client.post(reverse("admin:syncs_sync_export_now", args=[pro_sync.pk]), follow=True)

    assert response.redirect_chain[-1][0] == reverse("admin:syncs_sync_change", args=[pro_sync.pk])
    assert "already has a queued or running run" in " ".join(messages_of(response))
    assert SyncRun.objects.count() == 1


def test_staff_without_run_permission_cannot_run(pro_sync):
    client = staff_client(["syncs.view_sync", "syncs.change_sync"])

    page = client.get(CHANGELIST)
    assert page.status_code == 200
    assert RUN_ACTIONS.isdisjoint(action_names(page))
    assert SCHEDULE_ACTIONS <= set(action_names(page))
    change_page = client.get(reverse("admin:syncs_sync_change", args=[pro_sync.pk])).content.decode()
    assert reverse("admin:syncs_sync_export_now", args=[pro_sync.pk]) not in change_page

    assert client.post(reverse("admin:syncs_sync_export_now", args=[pro_sync.pk])).status_code == 403
    assert client.post(reverse("admin:syncs_sync_dry_run", args=[pro_sync.pk])).status_code == 403
    post_action(client, "export_now", [pro_sync])
    assert not SyncRun.objects.exists()


def test_staff_with_run_permission_sees_the_actions(pro_sync):
    client = staff_client(["syncs.view_sync", "syncs.run_sync"])

    offered = set(action_names(client.get(CHANGELIST)))
    assert RUN_ACTIONS <= offered
    assert SCHEDULE_ACTIONS.isdisjoint(offered)
