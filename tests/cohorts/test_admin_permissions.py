"""Issue 10 item 7 for cohorts and profiles: each control checks what it shows and does."""

from __future__ import annotations

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from cohorts.models import Profile
from tests.factories import ProfileFactory, StaticCohortFactory, StaticMembershipFactory
from tests.syncs.admin_helpers import action_names, messages_of, staff_client

pytestmark = pytest.mark.django_db

COHORTS = reverse("admin:cohorts_cohort_changelist")
EXPORT_PAGE = reverse("admin:syncs_sync_export_cohorts")


def members_csv_url(cohort) -> str:  # type: ignore[no-untyped-def]
    return reverse("admin:cohorts_cohort_members_csv", args=[cohort.pk])


def test_export_to_is_offered_only_to_those_who_may_create_and_run_syncs() -> None:
    cohort = StaticCohortFactory()
    viewer = staff_client(["cohorts.view_cohort"])
    exporter = staff_client(["cohorts.view_cohort", "syncs.view_sync", "syncs.add_sync", "syncs.run_sync"])

    refused = viewer.post(COHORTS, {"action": "export_to", ACTION_CHECKBOX_NAME: [cohort.pk]})
    viewer_page = viewer.get(reverse("admin:cohorts_cohort_change", args=[cohort.pk])).content.decode()
    allowed = exporter.post(COHORTS, {"action": "export_to", ACTION_CHECKBOX_NAME: [cohort.pk]})

    assert "export_to" not in action_names(viewer.get(COHORTS))
    assert refused.status_code == 200 and not messages_of(refused)
    assert EXPORT_PAGE not in viewer_page
    assert "export_to" in action_names(exporter.get(COHORTS))
    assert allowed.status_code == 302 and allowed["Location"].startswith(EXPORT_PAGE)
    assert EXPORT_PAGE in exporter.get(reverse("admin:cohorts_cohort_change", args=[cohort.pk])).content.decode()


def test_members_csv_needs_seeing_profiles_too() -> None:
    membership = StaticMembershipFactory()
    ProfileFactory(distinct_id=membership.distinct_id)
    cohort_only = staff_client(["cohorts.view_cohort"])
    with_profiles = staff_client(["cohorts.view_cohort", "cohorts.view_profile"])

    refused = cohort_only.get(members_csv_url(membership.cohort))
    page = cohort_only.get(reverse("admin:cohorts_cohort_change", args=[membership.cohort.pk])).content.decode()
    allowed = with_profiles.get(members_csv_url(membership.cohort))

    assert refused.status_code == 403
    assert members_csv_url(membership.cohort) not in page
    assert allowed.status_code == 200
    assert membership.distinct_id in b"".join(allowed.streaming_content).decode()


def test_import_needs_adding_and_changing_profiles() -> None:
    upload = "distinct_id,plan\nada,pro\n"
    adder = staff_client(["cohorts.view_profile", "cohorts.add_profile"])
    importer = staff_client(["cohorts.add_profile", "cohorts.change_profile"])
    url = reverse("admin:cohorts_profile_import")

    refused = adder.post(url, {"file": SimpleUploadedFile("p.csv", upload.encode())})
    listing = adder.get(reverse("admin:cohorts_profile_changelist")).content.decode()
    allowed = importer.post(url, {"file": SimpleUploadedFile("p.csv", upload.encode())})

    assert refused.status_code == 403
    assert url not in listing
    assert allowed.status_code == 200
    assert Profile.objects.filter(distinct_id="ada").exists()


@pytest.mark.parametrize(
    "url",
    [
        "/admin/cohorts/cohort/abc/members.csv",
        "/admin/cohorts/cohort/abc/change/",
        "/admin/cohorts/profile/abc/change/",
        "/admin/cohorts/profile/%00/delete/",
    ],
)
def test_malformed_cohort_and_profile_ids_are_not_found(admin_client, url) -> None:
    response = admin_client.get(url)

    assert response.status_code == 404
    assert "is not a valid id" in response.content.decode()
