"""The run page of a dry run, and the page approving a run the mass-removal guard held,
say how many API calls sending the plan would take."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from destinations.marketo.settings import quota_resets_at
from syncs.models import RunStatus
from tests.factories import SyncedMemberFactory, SyncFactory
from tests.syncs.fakes import FakeConnector, fake_connector_fixture, pro_profile, run_now  # noqa: F401

pytestmark = pytest.mark.django_db


def test_a_dry_runs_page_shows_its_projected_api_calls(admin_client, fake: FakeConnector) -> None:
    for n in range(3):
        pro_profile(f"user{n}@example.com")
    sync = SyncFactory(destination__options={"rowset_batch_size": 2}, options={"create_missing_field": False})
    dry = run_now(sync, dry_run=True)

    page = admin_client.get(reverse("admin:syncs_syncrun_change", args=[dry.pk])).content.decode()

    assert "Sending this plan would take <strong>4 API calls</strong>" in page
    assert "2 to read the data extension and its columns; 2 for rowset upserts (up to 2 rows each)." in page
    assert "Token (identity) requests are not counted." in page


def test_the_approval_page_shows_what_the_held_run_would_take(admin_client, fake: FakeConnector) -> None:
    pro_profile("stays@example.com")
    sync = SyncFactory(destination__kind="marketo", destination__marketo=True, options={"removal_guard_ratio": 0.5})
    SyncedMemberFactory(sync=sync, identity_value="stays@example.com", is_member=True)
    for n in range(3):
        SyncedMemberFactory(sync=sync, identity_value=f"gone{n}@example.com", is_member=True)
    held = run_now(sync)
    assert held.status == RunStatus.AWAITING_APPROVAL

    page = admin_client.get(reverse("admin:syncs_syncrun_approve", args=[held.pk])).content.decode()

    # Marketo: the lead fields, then one lead sync for the 3 leavers.
    assert "Sending this plan would take <strong>2 API calls</strong>" in page
    assert "1 to read the lead fields (describe); 1 for lead syncs (up to 300 leads each)." in page
    # The fake connector spends none of the instance's daily quota.
    resets = quota_resets_at(dt.datetime.now(dt.UTC))
    assert (f"the account has <strong>50,000</strong> of its 50,000 calls left today (the quota resets at "
            f"{resets:%Y-%m-%d %H:%M} UTC)") in page


def test_a_sent_runs_page_shows_no_projection(admin_client, fake: FakeConnector) -> None:
    pro_profile("ana@example.com")
    run = run_now(SyncFactory())

    page = admin_client.get(reverse("admin:syncs_syncrun_change", args=[run.pk])).content.decode()

    assert run.status == RunStatus.SUCCEEDED and "Sending this plan would take" not in page


def test_a_held_runs_pages_answer_when_the_destinations_options_no_longer_parse(admin_client, fake: FakeConnector) -> None:
    """The quota left is read when the page is shown: options edited into something unreadable
    since (here straight in the database) leave it out instead of failing the page."""
    from destinations.models import Destination

    pro_profile("stays@example.com")
    sync = SyncFactory(destination__kind="marketo", destination__marketo=True, options={"removal_guard_ratio": 0.5})
    SyncedMemberFactory(sync=sync, identity_value="stays@example.com", is_member=True)
    for n in range(3):
        SyncedMemberFactory(sync=sync, identity_value=f"gone{n}@example.com", is_member=True)
    held = run_now(sync)
    Destination.objects.filter(pk=sync.destination_id).update(options={"daily_call_quota": "lots"})

    for name in ("admin:syncs_syncrun_approve", "admin:syncs_syncrun_change"):
        response = admin_client.get(reverse(name, args=[held.pk]))
        page = response.content.decode()
        assert response.status_code == 200, name
        assert "Sending this plan would take <strong>2 API calls</strong>" in page
        assert "calls left today" not in page
