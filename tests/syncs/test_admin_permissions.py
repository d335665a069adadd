"""Issue 10 item 7: every sync and run control checks the view permission on its object plus
its own permission, schedules need `change_sync`, and malformed ids are 404s, never 500s."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from syncs.models import RunStatus, Sync, SyncRun
from tests.factories import SyncFactory, SyncRunFactory
from tests.syncs.admin_helpers import action_names, messages_of, staff_client

pytestmark = pytest.mark.django_db

SYNC_CHANGELIST = reverse("admin:syncs_sync_changelist")
RUN_CHANGELIST = reverse("admin:syncs_syncrun_changelist")
# Holds the control permissions and nothing to look with.
BLIND_RUNNER = ["syncs.run_sync", "syncs.manage_run", "syncs.approve_run"]


@pytest.fixture
def guarded_run() -> SyncRun:
    return SyncRunFactory(
        status=RunStatus.AWAITING_APPROVAL,
        planned_removes=3,
        plan_sample={"remove": [{"identity": "secret-person@example.com"}]},
    )


def test_run_permissions_without_view_cannot_request_a_dry_run() -> None:
    sync = SyncFactory()
    client = staff_client(BLIND_RUNNER)

    for name in ("dry_run", "export_now"):
        response = client.post(reverse(f"admin:syncs_sync_{name}", args=[sync.pk]))
        assert response.status_code == 403

    assert not SyncRun.objects.exists()


def test_manage_permissions_without_view_cannot_open_the_approve_page(guarded_run) -> None:
    client = staff_client(BLIND_RUNNER)

    response = client.get(reverse("admin:syncs_syncrun_approve", args=[guarded_run.pk]))

    assert response.status_code == 403
    assert b"secret-person@example.com" not in response.content
    for name in ("approve", "retry", "cancel"):
        response = client.post(reverse(f"admin:syncs_syncrun_{name}", args=[guarded_run.pk]), {"post": "yes"})
        assert response.status_code == 403
    guarded_run.refresh_from_db()
    assert guarded_run.status == RunStatus.AWAITING_APPROVAL


def test_manage_run_alone_no_longer_approves_mass_removals(guarded_run) -> None:
    client = staff_client(["syncs.view_syncrun", "syncs.manage_run"])

    page = client.get(reverse("admin:syncs_syncrun_change", args=[guarded_run.pk])).content.decode()
    offered = action_names(client.get(RUN_CHANGELIST))
    response = client.post(reverse("admin:syncs_syncrun_approve", args=[guarded_run.pk]), {"post": "yes"})

    assert reverse("admin:syncs_syncrun_approve", args=[guarded_run.pk]) not in page
    assert "approve_guarded_run" not in offered and {"retry_failed_users", "cancel_run"} <= set(offered)
    assert response.status_code == 403
    guarded_run.refresh_from_db()
    assert guarded_run.status == RunStatus.AWAITING_APPROVAL


def test_approve_run_with_view_opens_the_confirmation(guarded_run) -> None:
    client = staff_client(["syncs.view_syncrun", "syncs.approve_run"])

    page = client.get(reverse("admin:syncs_syncrun_change", args=[guarded_run.pk])).content.decode()
    response = client.get(reverse("admin:syncs_syncrun_approve", args=[guarded_run.pk]))

    assert reverse("admin:syncs_syncrun_approve", args=[guarded_run.pk]) in page
    assert response.status_code == 200
    assert b"secret-person@example.com" in response.content


def test_enabling_a_schedule_needs_change_sync() -> None:
    sync = SyncFactory(enabled=False, mode=Sync.Mode.DYNAMIC)
    client = staff_client(["syncs.view_sync", "syncs.run_sync"])

    offered = action_names(client.get(SYNC_CHANGELIST))
    response = client.post(
        SYNC_CHANGELIST,
        {"action": "enable_dynamic_sync", ACTION_CHECKBOX_NAME: [sync.pk]},
        follow=True,
    )

    assert {"enable_dynamic_sync", "disable_dynamic_sync"}.isdisjoint(offered)
    assert "No action selected." in messages_of(response)
    sync.refresh_from_db()
    assert sync.enabled is False


def test_change_sync_enables_a_schedule() -> None:
    sync = SyncFactory(enabled=False, mode=Sync.Mode.DYNAMIC)
    client = staff_client(["syncs.view_sync", "syncs.change_sync"])

    client.post(SYNC_CHANGELIST, {"action": "enable_dynamic_sync", ACTION_CHECKBOX_NAME: [sync.pk]})

    sync.refresh_from_db()
    assert sync.enabled is True


@pytest.mark.parametrize(
    "url",
    [
        "/admin/syncs/syncrun/abc/",
        "/admin/syncs/syncrun/abc/change/",
        "/admin/syncs/syncrun/abc/failures.csv",
        "/admin/syncs/syncrun/abc/approve/",
        "/admin/syncs/sync/abc/change/",
        "/admin/syncs/sync/1.5/history/",
    ],
)
def test_malformed_run_and_sync_ids_are_not_found(admin_client, url) -> None:
    response = admin_client.get(url)

    assert response.status_code == 404
    assert "is not a valid id" in response.content.decode()


@pytest.mark.parametrize("name", ["export_now", "dry_run"])
def test_malformed_ids_on_sync_buttons_are_not_found(admin_client, name) -> None:
    response = admin_client.post(reverse(f"admin:syncs_sync_{name}", args=["abc"]))

    assert response.status_code == 404
    assert not SyncRun.objects.exists()
