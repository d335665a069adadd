"""The admin index's "Syncs" panel: status at a glance, warnings first, a few queries."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from syncs.models import RunStatus, Sync
from syncs.schedules import sync_schedule_name
from tests.factories import CohortFactory, DestinationFactory, SyncFactory, SyncRunFactory
from tests.syncs.admin_helpers import staff_client

pytestmark = pytest.mark.django_db

INDEX = reverse("admin:index")


def schedule(sync: Sync, *, next_run: dt.datetime) -> None:
    Schedule.objects.create(
        name=sync_schedule_name(sync.pk), func="syncs.tasks.run_scheduled_sync",
        schedule_type=Schedule.MINUTES, minutes=sync.effective_interval_minutes, next_run=next_run,
    )


def panel_rows(response) -> dict[str, str]:
    """Sync name -> warning, as the panel shows them."""
    return {row.sync.name: row.warning for row in response.context["dashboard"]["rows"]}


def test_panel_shows_syncs_with_their_warnings(admin_client, django_assert_max_num_queries):
    now = timezone.now()
    healthy = SyncFactory(name="Healthy", cohort=CohortFactory(name="Pro"),
                          destination=DestinationFactory(name="SFMC prod"))
    SyncRunFactory(sync=healthy, status=RunStatus.SUCCEEDED, finished_at=now)
    schedule(healthy, next_run=now + dt.timedelta(minutes=5))

    failing = SyncFactory(name="Failing")
    SyncRunFactory(sync=failing, status=RunStatus.SUCCEEDED)
    SyncRunFactory(sync=failing, status=RunStatus.FAILED)
    partial = SyncFactory(name="Partial")
    SyncRunFactory(sync=partial, status=RunStatus.PARTIAL)
    guarded = SyncFactory(name="Guarded")
    SyncRunFactory(sync=guarded, status=RunStatus.AWAITING_APPROVAL, planned_removes=4200)
    stuck = SyncFactory(name="Stuck")  # SFMC: every 15 minutes, last due an hour ago
    SyncRunFactory(sync=stuck, status=RunStatus.SUCCEEDED)
    schedule(stuck, next_run=now - dt.timedelta(hours=1))
    SyncFactory(name="Once", mode=Sync.Mode.ONE_TIME)

    with django_assert_max_num_queries(10):
        response = admin_client.get(INDEX)

    assert response.status_code == 200
    rows = panel_rows(response)
    assert rows["Healthy"] == ""
    assert rows["Failing"] == "Last run failed."
    assert rows["Partial"].startswith("Last run partially failed")
    assert rows["Guarded"] == "Waiting for approval to remove 4,200 users."
    assert rows["Stuck"].startswith("Scheduled sync not running")
    assert rows["Once"] == ""
    # Syncs needing attention come first.
    names = list(rows)
    assert set(names[:4]) == {"Failing", "Partial", "Guarded", "Stuck"}
    page = response.content.decode()
    assert "Pro → SFMC prod" in page
    assert "4 need attention" in page
    assert 'id="syncs-dashboard"' in page


def test_query_count_does_not_grow_with_syncs(admin_client, django_assert_max_num_queries):
    for _ in range(20):
        sync = SyncFactory()
        SyncRunFactory(sync=sync, status=RunStatus.SUCCEEDED)
        schedule(sync, next_run=timezone.now())

    with django_assert_max_num_queries(10):
        response = admin_client.get(INDEX)

    assert len(response.context["dashboard"]["rows"]) == 20


def test_enabled_dynamic_sync_without_schedule_is_flagged(admin_client):
    SyncFactory(name="Unscheduled")

    rows = panel_rows(admin_client.get(INDEX))

    assert rows["Unscheduled"].startswith("Enabled but not scheduled")


def test_empty_panel_points_to_export(admin_client):
    page = admin_client.get(INDEX).content.decode()

    assert "No syncs yet" in page


def test_panel_hidden_from_staff_who_cannot_see_syncs():
    SyncFactory(name="Secret plans")
    client = staff_client(["cohorts.view_cohort"])

    response = client.get(INDEX)

    assert response.status_code == 200
    assert 'id="syncs-dashboard"' not in response.content.decode()
