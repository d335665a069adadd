"""The sync form checks what it can before saving: the target field against the
destination, one field per destination account, and only the settings the mode uses."""

from __future__ import annotations

import pytest
from django.contrib.messages import constants, get_messages
from django.urls import reverse

from cohorts.models import Cohort
from destinations.base import ConnectionReport, FieldInfo
from destinations.errors import TransientError
from syncs.models import Sync
from tests.destinations.destadmin_fakes import fake_connector
from tests.factories import CohortFactory, DestinationFactory, ProfileFactory, SyncFactory
from tests.sandbox_destinations import sandbox_destination
from tests.syncs.admin_helpers import staff_client

pytestmark = pytest.mark.django_db

ADD = reverse("admin:syncs_sync_add")
COVERAGE = reverse("admin:syncs_sync_identity_coverage")
BOOLEAN_FIELDS = ConnectionReport(
    ok=True, summary="", fields=(
        FieldInfo(name="Pro_users", label="Pro_users", type="Boolean", is_target_compatible=True),
        FieldInfo(name="Email", label="Email", type="EmailAddress", is_target_compatible=False),
    ),
)


def form_data(**overrides) -> dict:
    data = {
        "name": "Pro users → destination",
        "cohort": CohortFactory().pk,
        "destination": DestinationFactory().pk,
        "target_field": "Pro_users",
        "identity_property": "$email",
        "mode": Sync.Mode.DYNAMIC,
        "interval_minutes": "",
        "enabled": "on",
        "options": "{}",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def shown_messages(response) -> list[tuple[int, str]]:
    return [(m.level, str(m)) for m in get_messages(response.wsgi_request)]


def form_errors(response) -> dict:
    return response.context["adminform"].form.errors


# --- The target field, checked against the destination ----------------------------------


def test_a_missing_marketo_field_is_an_error_at_save(admin_client, sandbox):
    marketo = sandbox_destination(sandbox, "marketo")

    response = admin_client.post(ADD, form_data(destination=marketo.pk, target_field="cohortTypo"))

    assert response.status_code == 200
    assert form_errors(response)["target_field"][0].startswith("Marketo has no lead field 'cohortTypo'.")
    assert not Sync.objects.exists()


def test_an_existing_marketo_field_is_saved_and_said_to_be_checked(admin_client, sandbox):
    marketo = sandbox_destination(sandbox, "marketo")

    response = admin_client.post(ADD, form_data(destination=marketo.pk, target_field="cohortProUsers"))

    assert response.status_code == 302
    assert (constants.INFO, "Target field checked with the destination. Marketo field Pro Users Cohort "
            "(API name cohortProUsers): a writable Boolean field.") in shown_messages(response)


def test_an_sfmc_column_that_will_be_created_says_so(admin_client, sandbox):
    data_extension = sandbox_destination(sandbox, "sfmc_data_extension")

    response = admin_client.post(ADD, form_data(destination=data_extension.pk, target_field="Pro_users"))

    assert response.status_code == 302
    assert (constants.INFO, "The data extension 'CohortSync_Demo' has no column 'Pro_users' yet: the "
            "first run creates it as a Boolean column.") in shown_messages(response)


def test_an_unreachable_destination_saves_with_a_warning(admin_client):
    with fake_connector(TransientError("https://mc.example/v2/token did not answer within 10s.", code="timeout")):
        response = admin_client.post(ADD, form_data())

    assert response.status_code == 302
    [(level, message)] = [m for m in shown_messages(response) if m[0] == constants.WARNING]
    assert message.startswith("Saved without checking the target field. Could not check 'Pro_users' against ")
    assert "did not answer within 10s" in message
    assert message.endswith("The first run checks it again before sending anything.")
    assert Sync.objects.count() == 1


def test_editing_only_the_name_does_not_ask_the_destination(admin_client):
    sync = SyncFactory(target_field="Pro_users")
    # As a browser posts it: with the hidden initial value of the options (a callable default).
    data = form_data(cohort=sync.cohort_id, destination=sync.destination_id, name="Renamed",
                     **{"initial-options": "{}"})

    with fake_connector(BOOLEAN_FIELDS) as configs:
        response = admin_client.post(reverse("admin:syncs_sync_change", args=[sync.pk]), data)
        assert response.status_code == 302
        assert configs == []
        response = admin_client.post(reverse("admin:syncs_sync_change", args=[sync.pk]),
                                     {**data, "target_field": "Email"})

    assert "The destination has no usable field 'Email'." in form_errors(response)["target_field"]


# --- One field per destination account ---------------------------------------------------


def test_a_second_destination_record_on_the_same_data_extension_cannot_reuse_a_field(admin_client):
    first = DestinationFactory(name="SFMC prod", subdomain="mc-prod", account_id="7", data_extension_key="COHORTS")
    copy = DestinationFactory(name="SFMC prod (copy)", subdomain="mc-prod", account_id="7",
                              data_extension_key="cohorts")
    SyncFactory(name="Pro → SFMC", destination=first, target_field="Pro_users")

    with fake_connector(BOOLEAN_FIELDS):
        response = admin_client.post(ADD, form_data(destination=copy.pk, target_field="pro_users"))

    assert response.status_code == 200
    assert form_errors(response)["target_field"] == [
        "The field 'pro_users' is already written by the sync 'Pro → SFMC' through the destination "
        "SFMC prod, which writes to the same place: the data extension 'cohorts' of the SFMC "
        "account mc-prod (MID 7). Two syncs writing one field would overwrite each other: choose "
        "another field."
    ]


def test_another_business_unit_may_use_the_same_field_name(admin_client):
    first = DestinationFactory(subdomain="mc-prod", account_id="7")
    other_unit = DestinationFactory(subdomain="mc-prod", account_id="8")
    SyncFactory(destination=first, target_field="Pro_users")

    with fake_connector(BOOLEAN_FIELDS):
        response = admin_client.post(ADD, form_data(destination=other_unit.pk))

    assert response.status_code == 302


def test_the_model_refuses_a_shared_field_whoever_saves(admin_client):
    """The service that "Export to…" and sync_update use runs the same rule as the form."""
    from django.core.exceptions import ValidationError

    from syncs.services import sync_update, syncs_create_for_cohorts

    marketo = DestinationFactory(marketo=True, base_url="https://123-abc-456.mktorest.com")
    same_instance = DestinationFactory(marketo=True, base_url="https://123-ABC-456.mktorest.com")
    SyncFactory(name="VIP", destination=marketo, target_field="cohortVip")
    cohort = CohortFactory()

    with pytest.raises(ValidationError, match="already written by the sync 'VIP'"):
        syncs_create_for_cohorts(cohorts=[cohort], destination=same_instance, mode=Sync.Mode.DYNAMIC,
                                 identity_property="$email", target_fields={cohort.pk: "cohortVIP"},
                                 created_by=None)
    other = SyncFactory(destination=same_instance, target_field="cohortOther")
    with pytest.raises(ValidationError, match="already written by the sync 'VIP'"):
        sync_update(sync=other, changes={"target_field": "cohortVip"})
    assert Sync.objects.count() == 2


def test_pointing_a_destination_at_an_account_in_use_may_not_share_a_field(admin_client):
    first = DestinationFactory(name="Marketo EU", marketo=True, base_url="https://111-AAA-111.mktorest.com")
    second = DestinationFactory(name="Marketo US", marketo=True, base_url="https://222-BBB-222.mktorest.com")
    SyncFactory(name="EU VIP", destination=first, target_field="cohortVip")
    SyncFactory(name="US VIP", destination=second, target_field="cohortVip")
    url = reverse("admin:destinations_destination_change", args=[second.pk])
    data = {"name": second.name, "kind": "marketo", "base_url": "https://111-aaa-111.mktorest.com",
            "client_id": "client-id", "options": "{}"}

    response = admin_client.post(url, data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.non_field_errors()
    assert "two syncs would write the field 'cohortVip': 'US VIP' here and 'EU VIP' there" in errors[0]
    second.refresh_from_db()
    assert second.base_url == "https://222-BBB-222.mktorest.com"


# --- Settings that apply to the mode -----------------------------------------------------


def test_an_interval_on_a_one_time_export_is_refused(admin_client):
    with fake_connector(BOOLEAN_FIELDS):
        response = admin_client.post(ADD, form_data(mode=Sync.Mode.ONE_TIME, interval_minutes="30"))

    assert response.status_code == 200
    assert form_errors(response)["interval_minutes"] == [
        "A one-time export runs once and has no schedule: clear the interval, or choose “Dynamic "
        "sync” to export on a schedule."
    ]


def test_options_for_removals_are_refused_on_a_one_time_export(admin_client):
    with fake_connector(BOOLEAN_FIELDS):
        response = admin_client.post(ADD, form_data(mode=Sync.Mode.ONE_TIME,
                                                    options='{"removal_guard_ratio": 0.5}'))

    assert response.status_code == 200
    assert "applies to dynamic syncs only" in form_errors(response)["options"][0]


def test_the_interval_placeholder_is_the_default_alone(admin_client):
    sync = SyncFactory(destination=DestinationFactory(marketo=True))

    page = admin_client.get(reverse("admin:syncs_sync_change", args=[sync.pk])).content.decode()

    assert 'placeholder="120"' in page
    assert "(destination default)" not in page
    assert "syncs/sync_form.js" in page


# --- Identity coverage -------------------------------------------------------------------


def test_identity_coverage_counts_members_with_the_property(admin_client):
    cohort = CohortFactory(rules={"all": [{"property": "plan", "op": "eq", "value": "pro"}]})
    for n in range(3):
        ProfileFactory(properties={"plan": "pro", "$email": f"p{n}@example.com"})
    ProfileFactory(properties={"plan": "pro"})
    ProfileFactory(properties={"plan": "pro", "$email": ""})
    ProfileFactory(properties={"plan": "free", "$email": "f@example.com"})

    email = admin_client.get(COVERAGE, {"cohort": cohort.pk, "property": "$email"}).json()
    distinct = admin_client.get(COVERAGE, {"cohort": cohort.pk, "property": "distinct_id"}).json()

    assert email["message"] == "3 of 5 members have $email; 2 without it would be skipped."
    assert (email["members"], email["with_property"], email["warning"]) == (5, 3, False)
    assert distinct["message"] == "5 of 5 members have distinct_id."
    nobody = admin_client.get(COVERAGE, {"cohort": cohort.pk, "property": "$emial"}).json()
    assert nobody["message"].startswith("0 of 5 members have $emial") and nobody["warning"] is True


def test_identity_coverage_needs_sync_editing_and_cohort_viewing():
    cohort = CohortFactory()
    viewer = staff_client(["syncs.view_sync", "cohorts.view_cohort"])
    editor = staff_client(["syncs.view_sync", "syncs.change_sync", "cohorts.view_cohort"])

    assert viewer.get(COVERAGE, {"cohort": cohort.pk, "property": "$email"}).status_code == 403
    answer = editor.get(COVERAGE, {"cohort": cohort.pk, "property": "$email"}).json()
    assert answer["ok"] is True
    assert editor.get(COVERAGE, {"cohort": "x", "property": "$email"}).json()["ok"] is False
    assert Cohort.objects.count() == 1
