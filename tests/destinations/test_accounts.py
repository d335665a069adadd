"""Which account a destination writes to, and where its field names live."""

from __future__ import annotations

import pytest

from destinations.accounts import (
    KindSettings,
    destination_account_key,
    destination_field_scope,
    destination_field_scope_label,
)
from destinations.selectors import destinations_sharing_field_scope
from tests.factories import DestinationFactory


def settings(kind: str = "sfmc_data_extension", **values: str) -> KindSettings:
    return KindSettings(kind, values)


def test_an_sfmc_tenant_is_the_same_written_as_subdomain_or_auth_url() -> None:
    by_subdomain = settings(subdomain="mc123", account_id="514009877", data_extension_key="DE")
    by_url = settings(auth_base_url="https://MC123.auth.marketingcloudapis.com/v2/token",
                      account_id="514009877", data_extension_key="de")

    assert destination_account_key(by_subdomain) == destination_account_key(by_url)
    assert destination_field_scope(by_subdomain) == destination_field_scope(by_url)


def test_business_unit_data_extension_and_attribute_set_separate_scopes() -> None:
    base = settings(subdomain="mc123", account_id="1", data_extension_key="DE")

    assert destination_field_scope(base) != destination_field_scope(
        settings(subdomain="mc123", account_id="2", data_extension_key="DE"))
    assert destination_field_scope(base) != destination_field_scope(
        settings(subdomain="mc123", account_id="1", data_extension_key="OTHER"))
    contacts = settings("sfmc_contacts", subdomain="mc123", account_id="1",
                        attribute_set="Email Demographics")
    assert destination_account_key(contacts) == destination_account_key(base)
    assert destination_field_scope(contacts) != destination_field_scope(base)


def test_a_marketo_instance_is_its_rest_host() -> None:
    one = settings("marketo", base_url="https://123-ABC-456.mktorest.com")
    same = settings("marketo", base_url="https://123-abc-456.mktorest.com/")
    other = settings("marketo", base_url="https://999-XYZ-000.mktorest.com")

    assert destination_field_scope(one) == destination_field_scope(same) == "marketo:123-abc-456.mktorest.com"
    assert destination_field_scope(one) != destination_field_scope(other)
    assert destination_field_scope_label(one) == "the Marketo instance 123-ABC-456.mktorest.com"


def test_the_label_names_the_data_extension_and_account() -> None:
    label = destination_field_scope_label(settings(subdomain="mc123", account_id="7", data_extension_key="DE"))

    assert label == "the data extension 'DE' of the SFMC account mc123 (MID 7)"


@pytest.mark.django_db
def test_destinations_sharing_a_scope_are_found_by_their_settings() -> None:
    first = DestinationFactory(subdomain="mc-one", data_extension_key="COHORTS")
    copy = DestinationFactory(subdomain="mc-one", data_extension_key="cohorts")
    DestinationFactory(subdomain="mc-two", data_extension_key="COHORTS")
    DestinationFactory(marketo=True)

    assert sorted(destinations_sharing_field_scope(first, destination_id=first.pk)) == sorted([first.pk, copy.pk])
    # Unsaved settings (a form being filled in) find the saved destinations they match.
    unsaved = settings(subdomain="mc-one", data_extension_key="Cohorts")
    assert sorted(destinations_sharing_field_scope(unsaved, destination_id=None)) == sorted([first.pk, copy.pk])


def test_a_marketo_instances_static_lists_are_apart_from_its_lead_fields() -> None:
    fields = settings("marketo", base_url="https://123-ABC-456.mktorest.com")
    lists = settings("marketo_static_list", base_url="https://123-abc-456.mktorest.com")

    # One account (one budget), but a list named like a field is not that field.
    assert destination_account_key(lists) == destination_account_key(fields)
    assert destination_field_scope(lists) != destination_field_scope(fields)
    assert destination_field_scope_label(lists) == "the static lists of the Marketo instance 123-abc-456.mktorest.com"
