"""A view-only user sees the cohorts, syncs, runs and destinations, and no action, button
or link they could not use."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from playwright.sync_api import expect

from syncs.models import RunStatus
from tests.factories import (
    CohortFactory,
    DestinationFactory,
    SyncFactory,
    SyncFailureFactory,
    SyncRunFactory,
    UserFactory,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e, pytest.mark.browser]

VIEW_PERMISSIONS = ["view_cohort", "view_profile", "view_destination", "view_sync", "view_syncrun",
                    "view_syncfailure"]


def test_a_view_only_user_sees_no_action_they_cannot_take(log_in: Any, live_server: Any) -> None:
    cohort = CohortFactory(name="Pro users")
    destination = DestinationFactory(name="SFMC prod")
    sync = SyncFactory(name="Pro users → SFMC", cohort=cohort, destination=destination)
    run = SyncRunFactory(sync=sync, status=RunStatus.PARTIAL, failed_adds=1)
    SyncFailureFactory(run=run, retriable=True)
    viewer = UserFactory(is_staff=True, is_superuser=False)
    viewer.user_permissions.set(Permission.objects.filter(codename__in=VIEW_PERMISSIONS))
    page = log_in(user=viewer)
    base = live_server.url + "/admin"

    page.goto(f"{base}/cohorts/cohort/{cohort.pk}/change/")
    expect(page.get_by_role("heading", name="View cohort")).to_be_visible()
    expect(page.get_by_role("link", name="Download members (CSV)")).to_be_visible()
    expect(page.get_by_role("link", name="Export to…")).to_have_count(0)
    expect(page.get_by_role("button", name="+ Condition")).to_have_count(0)
    expect(page.get_by_role("button", name="Save", exact=True)).to_have_count(0)
    expect(page.get_by_role("link", name="Pro users → SFMC")).to_be_visible()

    page.goto(f"{base}/cohorts/cohort/")
    expect(page.get_by_role("link", name="Pro users")).to_be_visible()
    expect(page.get_by_label("Action")).to_have_count(0)

    page.goto(f"{base}/syncs/sync/{sync.pk}/change/")
    expect(page.get_by_role("heading", name="View sync")).to_be_visible()
    expect(page.get_by_role("button", name="Export now")).to_have_count(0)
    expect(page.get_by_role("button", name="Dry run")).to_have_count(0)
    expect(page.get_by_role("link", name="Runs", exact=True)).to_be_visible()

    page.goto(f"{base}/syncs/sync/")
    expect(page.get_by_role("link", name="Pro users → SFMC")).to_be_visible()
    expect(page.get_by_label("Action")).to_have_count(0)
    expect(page.get_by_role("link", name="Add sync")).to_have_count(0)

    page.goto(f"{base}/syncs/syncrun/{run.pk}/change/")
    expect(page.locator(".run-status")).to_have_text("Partially failed")
    expect(page.get_by_role("button", name="Retry failed users")).to_have_count(0)
    expect(page.get_by_role("button", name="Retry all failed users")).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)

    page.goto(f"{base}/destinations/destination/{destination.pk}/change/")
    expect(page.get_by_role("heading", name="View destination")).to_be_visible()
    expect(page.get_by_role("button", name="Test connection")).to_have_count(0)
