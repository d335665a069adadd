"""Issue 10 item 7: a view-only user reads destinations (no 500), cannot test or change them,
and sees what a sandbox received only with a role that may see users' data."""

from __future__ import annotations

import pytest
import responses
from django.urls import reverse

from destinations.models import Destination
from tests.destinations.destadmin_fakes import fake_connector
from tests.factories import DestinationFactory
from tests.syncs.admin_helpers import staff_client

pytestmark = pytest.mark.django_db

SFMC_SANDBOX = "http://127.0.0.1:8765/sfmc/auth"
SFMC_STATE = "http://127.0.0.1:8765/sfmc/_sandbox/state"
SECRET = "Sup3r-s3cret-value"


def change_url(destination: Destination) -> str:
    return reverse("admin:destinations_destination_change", args=[destination.pk])


def sandbox_url(destination: Destination) -> str:
    return reverse("admin:destinations_destination_sandbox_state", args=[destination.pk])


@pytest.mark.parametrize("kind", ["sfmc_data_extension", "contacts", "marketo"])
def test_view_only_user_reads_every_kind_of_destination(kind) -> None:
    destination = DestinationFactory(**({} if kind == "sfmc_data_extension" else {kind: True}),
                                     client_secret=SECRET, options={"max_concurrency": 2})
    client = staff_client(["destinations.view_destination"])

    changelist = client.get(reverse("admin:destinations_destination_changelist"))
    page = client.get(change_url(destination))

    assert changelist.status_code == 200
    assert page.status_code == 200
    content = page.content.decode()
    assert destination.name in content and "max_concurrency" in content
    assert SECRET not in content
    assert reverse("admin:destinations_destination_test_connection", args=[destination.pk]) not in content


def test_view_only_user_cannot_save_a_destination() -> None:
    destination = DestinationFactory(name="Before")
    client = staff_client(["destinations.view_destination"])

    response = client.post(change_url(destination), {"name": "After", "kind": destination.kind})

    assert response.status_code == 403
    destination.refresh_from_db()
    assert destination.name == "Before"


@responses.activate
def test_sandbox_page_needs_a_role_that_may_see_users_data() -> None:
    destination = DestinationFactory(auth_base_url=SFMC_SANDBOX)
    responses.get(SFMC_STATE, json={"data_extensions": {"DE": {"rows": [{"SubscriberKey": "ada@example.com"}]}}})
    view_only = staff_client(["destinations.view_destination"])
    with_profiles = staff_client(["destinations.view_destination", "cohorts.view_profile"])

    refused = view_only.get(sandbox_url(destination))
    change_page = view_only.get(change_url(destination)).content.decode()
    shown = with_profiles.get(sandbox_url(destination))

    assert refused.status_code == 403 and b"ada@example.com" not in refused.content
    assert sandbox_url(destination) not in change_page
    assert len(responses.calls) == 1, "the refused request must not reach the sandbox"
    assert shown.status_code == 200 and b"ada@example.com" in shown.content
    assert sandbox_url(destination) in with_profiles.get(change_url(destination)).content.decode()


def test_profile_view_alone_does_not_open_the_sandbox_page() -> None:
    destination = DestinationFactory(auth_base_url=SFMC_SANDBOX)
    client = staff_client(["cohorts.view_profile"])

    assert client.get(sandbox_url(destination)).status_code == 403


@pytest.mark.parametrize("suffix", ["", "change/", "history/", "delete/", "sandbox/"])
def test_malformed_destination_ids_are_not_found(admin_client, suffix) -> None:
    response = admin_client.get(f"/admin/destinations/destination/abc/{suffix}")

    assert response.status_code == 404


def test_test_connection_with_a_malformed_id_is_not_found(admin_client) -> None:
    with fake_connector() as configs:
        response = admin_client.post("/admin/destinations/destination/abc/test-connection/")

    assert response.status_code == 404
    assert configs == []
