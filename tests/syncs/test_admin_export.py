"""The "Export to…" page: chosen cohorts -> one sync each, with a first run requested."""

from __future__ import annotations

import pytest
from django.urls import reverse

from syncs.models import RunStatus, Sync, SyncRun
from syncs.selectors import sync_next_run_at
from tests.factories import CohortFactory, DestinationFactory, ProfileFactory, SyncFactory
from tests.sandbox_destinations import sandbox_destination
from tests.syncs.admin_helpers import messages_of, staff_client
from tests.syncs.fakes import fake_connector_fixture  # noqa: F401  (the `fake` fixture)

pytestmark = pytest.mark.django_db

URL = reverse("admin:syncs_sync_export_cohorts")


@pytest.fixture
def cohorts():
    for n in range(2):
        ProfileFactory(properties={"$email": f"pro{n}@example.com", "plan": "pro"})
    pro = CohortFactory(name="Pro users", rules={"all": [{"property": "plan", "op": "eq", "value": "pro"}]})
    trial = CohortFactory(name="Trial (EU) 2024", rules={"all": [{"property": "plan", "op": "eq", "value": "trial"}]})
    return pro, trial


def post_data(cohorts, destination, **overrides) -> dict:
    data = {
        "cohorts": ",".join(str(c.pk) for c in cohorts),
        "destination": destination.pk,
        "mode": Sync.Mode.DYNAMIC,
        "identity_property": "$email",
    }
    for cohort in cohorts:
        data[f"target_field_{cohort.pk}"] = cohort.name.replace(" ", "_")
    data.update(overrides)
    return data


def test_page_lists_cohorts_with_suggested_fields(admin_client, cohorts):
    pro, trial = cohorts

    response = admin_client.get(URL, {"cohorts": f"{pro.pk},{trial.pk},nonsense"})

    assert response.status_code == 200
    page = response.content.decode()
    assert "Pro users" in page and "Trial (EU) 2024" in page
    form = response.context["form"]
    assert form[f"target_field_{pro.pk}"].value() == "Pro_users"
    assert form[f"target_field_{trial.pk}"].value() == "Trial_EU_2024"


def test_post_creates_one_sync_per_cohort_and_runs_them(admin_client, admin_user, cohorts, fake,
                                                         django_capture_on_commit_callbacks):
    pro, trial = cohorts
    destination = DestinationFactory(name="SFMC prod")

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(URL, post_data(cohorts, destination), follow=True)

    assert response.redirect_chain[-1][0] == reverse("admin:syncs_sync_changelist")
    syncs = {s.cohort_id: s for s in Sync.objects.all()}
    assert syncs[pro.pk].name == "Pro users → SFMC prod"
    assert syncs[pro.pk].target_field == "Pro_users"
    assert syncs[trial.pk].target_field == "Trial_(EU)_2024"
    assert syncs[pro.pk].created_by == admin_user
    assert sync_next_run_at(syncs[pro.pk]) is not None
    first_run = SyncRun.objects.get(sync=syncs[pro.pk])
    assert first_run.status == RunStatus.SUCCEEDED and first_run.succeeded_adds == 2
    assert SyncRun.objects.filter(sync=syncs[trial.pk]).count() == 1
    assert "Created 2 syncs to SFMC prod" in " ".join(messages_of(response))


def test_one_time_export_is_not_scheduled(admin_client, cohorts, fake, django_capture_on_commit_callbacks):
    pro, _ = cohorts
    destination = DestinationFactory()

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(URL, post_data([pro], destination, mode=Sync.Mode.ONE_TIME))

    sync = Sync.objects.get()
    assert sync.mode == Sync.Mode.ONE_TIME
    assert sync_next_run_at(sync) is None
    assert SyncRun.objects.get(sync=sync).status == RunStatus.SUCCEEDED


def test_field_already_used_on_the_destination_is_refused(admin_client, cohorts):
    pro, trial = cohorts
    destination = DestinationFactory()
    SyncFactory(name="Older", destination=destination, target_field="Pro_users")

    response = admin_client.post(URL, post_data(cohorts, destination))

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert "already written by the sync 'Older'" in errors[f"target_field_{pro.pk}"][0]
    assert Sync.objects.count() == 1
    assert not SyncRun.objects.exists()


def test_same_field_for_two_cohorts_and_name_collisions_are_refused(admin_client, cohorts):
    pro, trial = cohorts
    destination = DestinationFactory(name="MK")
    SyncFactory(name="Trial (EU) 2024 → MK")

    response = admin_client.post(
        URL, post_data(cohorts, destination, **{f"target_field_{trial.pk}": "Pro_users"})
    )

    errors = response.context["form"].errors
    assert "each cohort needs its own field" in errors[f"target_field_{trial.pk}"][0]
    assert "A sync named 'Trial (EU) 2024 → MK' already exists" in " ".join(errors[f"target_field_{trial.pk}"])
    assert Sync.objects.count() == 1


def test_no_cohorts_redirects_with_a_message(admin_client):
    response = admin_client.get(URL, follow=True)

    assert "Choose one or more cohorts to export first" in " ".join(messages_of(response))


def test_needs_add_and_run_permissions(cohorts):
    pro, _ = cohorts
    destination = DestinationFactory()
    add_only = staff_client(["syncs.add_sync", "syncs.view_sync"])
    run_only = staff_client(["syncs.run_sync", "syncs.view_sync"])

    assert add_only.get(URL, {"cohorts": pro.pk}).status_code == 403
    assert run_only.post(URL, post_data([pro], destination)).status_code == 403
    assert not Sync.objects.exists()

    both = staff_client(["syncs.add_sync", "syncs.run_sync", "syncs.view_sync"])
    assert both.get(URL, {"cohorts": pro.pk}).status_code == 200


def test_fields_are_checked_against_the_destination_before_anything_is_created(admin_client, cohorts, sandbox):
    pro, trial = cohorts
    marketo = sandbox_destination(sandbox, "marketo")

    response = admin_client.post(URL, post_data(cohorts, marketo, **{
        f"target_field_{pro.pk}": "cohortProUsers", f"target_field_{trial.pk}": "cohortTrial",
    }))

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert errors[f"target_field_{trial.pk}"][0].startswith("Marketo has no lead field 'cohortTrial'.")
    assert f"target_field_{pro.pk}" not in errors
    assert not Sync.objects.exists()


def test_a_column_the_first_run_creates_is_announced(admin_client, cohorts, sandbox, django_capture_on_commit_callbacks):
    pro, _ = cohorts
    data_extension = sandbox_destination(sandbox, "sfmc_data_extension")

    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(URL, post_data([pro], data_extension), follow=True)

    assert "The data extension 'CohortSync_Demo' has no column 'Pro_users' yet: the first run creates it " \
           "as a Boolean column." in messages_of(response)


def test_a_field_used_through_another_record_of_the_same_instance_is_refused(admin_client, cohorts):
    pro, _ = cohorts
    first = DestinationFactory(name="Marketo", marketo=True, base_url="https://123-ABC-456.mktorest.com")
    copy = DestinationFactory(name="Marketo (team B)", marketo=True, base_url="https://123-abc-456.mktorest.com")
    SyncFactory(name="Older", destination=first, target_field="Pro_users")

    response = admin_client.post(URL, post_data([pro], copy))

    assert "is already written by the sync 'Older' through the destination Marketo" in \
        response.context["form"].errors[f"target_field_{pro.pk}"][0]


def test_an_empty_identity_takes_the_destination_kinds_default(admin_client, cohorts, fake):
    pro, _ = cohorts
    destination = DestinationFactory(name="SFMC prod")

    admin_client.post(URL, post_data([pro], destination, identity_property=""))

    assert Sync.objects.get(cohort=pro).identity_property == "$distinct_id"
