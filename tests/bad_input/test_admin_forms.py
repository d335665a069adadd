"""Bad values in the admin's JSON fields (profile properties, cohort rules, destination and
sync options): the form comes back with the error on its field and the text as typed, and
nothing is saved; never a 500, neither on save nor when the page is shown again."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Model
from django.test import RequestFactory
from django.urls import reverse

from cohorts.models import Cohort, Profile, StaticMembership
from cohortsync_site.forms import JSONValueField
from destinations.models import Destination
from syncs.models import Sync
from tests.bad_input.bad_values import (
    BAD_VALUE_IDS,
    BAD_VALUES,
    HUGE_INTEGER,
    NAN,
    NUL,
    TOO_DEEP_TO_READ,
    TOO_DEEP_TO_READ_PROBLEM,
    infinity,
    surrogate,
)
from tests.factories import (
    CohortFactory,
    DestinationFactory,
    ProfileFactory,
    StaticCohortFactory,
    StaticMembershipFactory,
    SyncFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

TOO_DEEP_TO_READ_MESSAGE = f"the value {TOO_DEEP_TO_READ_PROBLEM}."


def row(model: type[Model], pk: int) -> dict:
    return model.objects.values().get(pk=pk)


def assert_shown_again_with_error(response, field: str, message: str, typed: str) -> None:
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors[field] == [message]
    page = response.content.decode()
    assert html.escape(message) in page
    assert html.escape(typed) in page  # the text as typed, to be fixed in place


# --- Profile properties ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", BAD_VALUES, ids=BAD_VALUE_IDS)
def test_profile_properties_with_a_bad_value_are_refused(admin_client, bad):
    typed = f'{{"plan": "pro", "p": {bad.json}}}'

    response = admin_client.post(
        reverse("admin:cohorts_profile_add"), {"distinct_id": "new", "properties": typed}
    )

    assert_shown_again_with_error(response, "properties", f"{bad.message('p')}.", typed)
    assert not Profile.objects.exists()


@pytest.mark.parametrize(
    "typed, message",
    [
        (f'{{"p": {TOO_DEEP_TO_READ}}}', TOO_DEEP_TO_READ_MESSAGE),
        ('{"pl\\u0000an": "pro"}', f'["pl\\u0000an"]: the key {NUL}.'),
        ('{"$email": "a@b.c", "\\ud800": 1}', f'["\\ud800"]: the key {surrogate("d800")}.'),
        ('{"seats": 1e999}', f"seats: {infinity()}."),
    ],
    ids=["1000-deep", "nul-in-a-key", "surrogate-in-a-key", "1e999"],
)
def test_profile_change_with_a_bad_value_keeps_the_stored_properties(admin_client, typed, message):
    profile = ProfileFactory(distinct_id="u1", properties={"plan": "free"})
    before = row(Profile, profile.pk)

    response = admin_client.post(
        reverse("admin:cohorts_profile_change", args=[profile.pk]),
        {"distinct_id": "u1", "properties": typed},
    )

    assert_shown_again_with_error(response, "properties", message, typed)
    assert row(Profile, profile.pk) == before


# --- Cohort rules -----------------------------------------------------------------------------


def cohort_form(rules: str, **overrides) -> dict:
    return {"name": "Pro users", "kind": "rules", "description": "", "rules": rules,
            "members_text": "", **overrides}


@pytest.mark.parametrize(
    "typed, message",
    [
        (f'{{"all": {TOO_DEEP_TO_READ}}}', TOO_DEEP_TO_READ_MESSAGE),
        ('{"all": [{"property": "score", "op": "gt", "value": NaN}]}', f"all[0].value: {NAN}."),
        ('{"all": [{"property": "\\ud800", "op": "is_set"}]}',
         f"all[0].property: {surrogate('d800')}."),
        ('{"any": [{"property": "plan", "op": "eq", "value": "pro\\u0000"}]}',
         f"any[0].value: {NUL}."),
    ],
    ids=["1000-deep", "nan", "surrogate-property", "nul-value"],
)
def test_new_cohort_with_bad_rules_is_refused(admin_client, typed, message):
    response = admin_client.post(reverse("admin:cohorts_cohort_add"), cohort_form(typed))

    assert_shown_again_with_error(response, "rules", message, typed)
    assert not Cohort.objects.exists()


def test_cohort_change_with_bad_rules_keeps_the_stored_rules(admin_client):
    cohort = CohortFactory(name="Pro users")
    before = row(Cohort, cohort.pk)
    typed = '{"all": [{"property": "seats", "op": "gte", "value": 1e400}]}'

    response = admin_client.post(
        reverse("admin:cohorts_cohort_change", args=[cohort.pk]), cohort_form(typed, description="x")
    )

    assert_shown_again_with_error(response, "rules", f"all[0].value: {infinity()}.", typed)
    assert row(Cohort, cohort.pk) == before


def test_static_list_upload_with_a_nul_byte_keeps_the_list(admin_client):
    cohort = StaticCohortFactory(name="VIP")
    StaticMembershipFactory(cohort=cohort, distinct_id="kept")
    upload = SimpleUploadedFile("ids.txt", b"distinct_id\nu1\nu\x002\n")

    response = admin_client.post(
        reverse("admin:cohorts_cohort_change", args=[cohort.pk]),
        {"name": "VIP", "kind": "static", "description": "", "rules": "", "members_text": "",
         "members_file": upload},
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["members_file"] == [
        f"Id number 2 {NUL}."
    ]
    assert list(StaticMembership.objects.values_list("distinct_id", flat=True)) == ["kept"]


# --- Destination options ------------------------------------------------------------------------


def destination_form(destination: Destination, options: str) -> dict:
    return {
        "name": destination.name, "kind": destination.kind, "subdomain": destination.subdomain,
        "account_id": "", "auth_base_url": "", "data_extension_key": destination.data_extension_key,
        "key_column": destination.key_column, "attribute_set": "", "base_url": "",
        "client_id": destination.client_id, "new_client_secret": "", "options": options,
        "_save": "Save",
    }


@pytest.mark.parametrize(
    "typed, message",
    [
        ('{"max_concurrency": NaN}', f"max_concurrency: {NAN}."),
        ('{"requests_per_second": 1e400}', f"requests_per_second: {infinity()}."),
        (f'{{"max_concurrency": {TOO_DEEP_TO_READ}}}', TOO_DEEP_TO_READ_MESSAGE),
        ('{"\\udfff": 2}', f'["\\udfff"]: the key {surrogate("dfff")}.'),
        ('{"max_\\u0000concurrency": 2}', f'["max_\\u0000concurrency"]: the key {NUL}.'),
    ],
    ids=["nan", "1e400", "1000-deep", "surrogate-key", "nul-key"],
)
def test_destination_options_with_a_bad_value_are_refused(admin_client, typed, message):
    destination = DestinationFactory(options={"max_concurrency": 2})
    before = row(Destination, destination.pk)

    response = admin_client.post(
        reverse("admin:destinations_destination_change", args=[destination.pk]),
        destination_form(destination, typed),
    )

    assert_shown_again_with_error(response, "options", message, typed)
    assert row(Destination, destination.pk) == before


# --- Sync options -----------------------------------------------------------------------------


def sync_form(sync: Sync, options: str) -> dict:
    return {
        "name": sync.name, "cohort": sync.cohort_id, "destination": sync.destination_id,
        "target_field": sync.target_field, "identity_property": sync.identity_property,
        "mode": sync.mode, "interval_minutes": "", "enabled": "on", "options": options,
    }


@pytest.mark.parametrize(
    "kind, typed, message",
    [
        ("data_extension", '{"property_mapping": {"plan": "Pl\\u0000an"}}',
         f"property_mapping.plan: {NUL}."),
        ("data_extension", '{"property_mapping": {"\\ud800": "Plan"}}',
         f'property_mapping["\\ud800"]: the key {surrogate("d800")}.'),
        ("contacts", '{"member_value": "in\\udc00"}', f"member_value: {surrogate('dc00')}."),
        ("contacts", '{"removal_guard_ratio": NaN}', f"removal_guard_ratio: {NAN}."),
        ("contacts", '{"removal_guard_ratio": 18446744073709551616}',
         f"removal_guard_ratio: {HUGE_INTEGER}."),
        ("data_extension", f'{{"property_mapping": {TOO_DEEP_TO_READ}}}', TOO_DEEP_TO_READ_MESSAGE),
    ],
    ids=["nul-in-mapping", "surrogate-mapping-key", "surrogate-member-value", "nan-ratio",
         "huge-integer-ratio", "1000-deep"],
)
def test_sync_options_with_a_bad_value_are_refused(admin_client, kind, typed, message):
    destination = DestinationFactory(contacts=kind == "contacts")
    sync = SyncFactory(destination=destination, options={})
    before = row(Sync, sync.pk)

    response = admin_client.post(reverse("admin:syncs_sync_change", args=[sync.pk]), sync_form(sync, typed))

    assert_shown_again_with_error(response, "options", message, typed)
    assert row(Sync, sync.pk) == before


# --- Every JSON field of the admin is covered ---------------------------------------------------


def test_every_json_field_in_the_admin_refuses_unstorable_values():
    """A JSON text field added later (alerts, sources...) gets the same check, or this fails.
    (A model JSONField edited through other widgets, such as a list of checkboxes, takes
    only values the form offers.)"""
    request = RequestFactory().get("/admin/")
    request.user = UserFactory(is_staff=True, is_superuser=True)
    checked = set()
    for model, model_admin in admin.site._registry.items():
        app_path = Path(model._meta.app_config.path)
        if not app_path.is_relative_to(settings.BASE_DIR) or "site-packages" in app_path.parts:
            continue  # Django's and django-q2's own admins
        form_class = model_admin.get_form(request)
        for name, form_field in form_class.base_fields.items():
            if isinstance(form_field, forms.JSONField):
                assert isinstance(form_field, JSONValueField), (
                    f"{model.__name__}.{name} in the admin is not a JSONValueField"
                )
                checked.add(f"{model.__name__}.{name}")
    assert {"Profile.properties", "Cohort.rules", "Destination.options", "Sync.options"} <= checked
