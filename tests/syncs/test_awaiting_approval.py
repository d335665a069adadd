"""A run held by the mass-removal guard stays visible until someone approves or rejects it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from syncs.errors import SyncRunStateError
from syncs.models import RunStatus, SyncRun
from syncs.selectors import sync_last_run
from syncs.services import sync_run_reject
from syncs.tasks import run_scheduled_sync
from tests.factories import SyncFactory, SyncRunFactory, UserFactory
from tests.syncs.admin_helpers import messages_of, staff_client
from tests.syncs.fakes import FakeConnector, fake_connector_fixture, pro_profile, run_now, set_plan  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def held(fake: FakeConnector) -> SyncRun:
    profiles = [pro_profile(f"user{n}@example.com") for n in range(3)]
    sync = SyncFactory(name="Pro users")
    run_now(sync)
    for profile in profiles:
        set_plan(profile, "free")
    run = run_now(sync)
    assert run.status == RunStatus.AWAITING_APPROVAL
    return run


def _dashboard_warning(client, name: str) -> str:
    rows = client.get(reverse("admin:index")).context["dashboard"]["rows"]
    return next(row.warning for row in rows if row.sync.name == name)


def test_scheduled_ticks_and_a_dry_run_do_not_bury_a_waiting_run(held: SyncRun, admin_client) -> None:
    for _ in range(3):
        run_scheduled_sync(held.sync_id)
    dry = run_now(held.sync, dry_run=True)

    held.refresh_from_db()
    assert held.skipped_ticks == 3
    assert not SyncRun.objects.filter(status=RunStatus.SKIPPED).exists()
    assert dry.status == RunStatus.SUCCEEDED
    assert _dashboard_warning(admin_client, "Pro users") == "Waiting for approval to remove 3 users."
    page = admin_client.get(reverse("admin:syncs_syncrun_change", args=[held.pk])).content.decode()
    assert "3 while this run waited for approval" in page


def test_the_last_run_of_a_sync_is_its_latest_run_that_was_not_skipped(admin_client) -> None:
    sync = SyncFactory(name="Busy")
    failed = SyncRunFactory(sync=sync, status=RunStatus.FAILED)
    SyncRunFactory(sync=sync, status=RunStatus.SKIPPED)

    assert sync_last_run(sync) == failed
    assert _dashboard_warning(admin_client, "Busy") == "Last run failed."


def test_rejecting_a_guarded_run_is_recorded_and_lets_the_next_run_plan_again(held: SyncRun, admin_client) -> None:
    manager = UserFactory(username="maria")

    rejected = sync_run_reject(run=held, rejected_by=manager)

    assert (rejected.status, rejected.error_code, rejected.cancelled_by) == (RunStatus.CANCELLED, "rejected", manager)
    assert rejected.error_message == "Rejected by maria: the 3 removals and 0 additions it held were not sent."
    assert rejected.finished_at is not None
    assert not _dashboard_warning(admin_client, "Pro users").startswith("Waiting for approval")
    with pytest.raises(SyncRunStateError, match="not awaiting approval: nothing to reject"):
        sync_run_reject(run=rejected, rejected_by=manager)
    assert run_now(held.sync).status == RunStatus.AWAITING_APPROVAL  # planned afresh, held again


def test_rejecting_from_the_run_page_needs_the_manage_run_permission(held: SyncRun) -> None:
    url = reverse("admin:syncs_syncrun_reject", args=[held.pk])
    page = reverse("admin:syncs_syncrun_change", args=[held.pk])

    viewer = staff_client(["syncs.view_syncrun"])
    assert url not in viewer.get(page).content.decode()
    assert viewer.post(url).status_code == 403
    held.refresh_from_db()
    assert held.status == RunStatus.AWAITING_APPROVAL

    manager = staff_client(["syncs.view_syncrun", "syncs.manage_run"])
    assert url in manager.get(page).content.decode()
    assert manager.get(url).status_code == 405
    response = manager.post(url, follow=True)

    held.refresh_from_db()
    assert held.status == RunStatus.CANCELLED and held.error_code == "rejected"
    assert messages_of(response)[0].startswith(f"Run #{held.pk} of Pro users rejected by ")


def test_the_reject_action_is_offered_with_the_other_run_actions(held: SyncRun) -> None:
    manager = staff_client(["syncs.view_syncrun", "syncs.manage_run"])
    response = manager.post(reverse("admin:syncs_syncrun_changelist"),
                            {"action": "reject_guarded_run", "_selected_action": [held.pk]}, follow=True)
    held.refresh_from_db()
    assert held.status == RunStatus.CANCELLED
    assert "rejected by" in messages_of(response)[0]
