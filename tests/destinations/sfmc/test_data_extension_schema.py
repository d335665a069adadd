"""Data extension schema checks: key column, target column, creation of missing columns."""

from __future__ import annotations

import pytest

from destinations.errors import ConfigurationError, TargetValidationError
from tests.destinations.sfmc.conftest import target

CONTACT_KEY_FIELDS = [
    {"name": "Contact Key", "type": "Text", "isPrimaryKey": True},
    {"name": "cohort_campaign_march", "type": "Boolean"},
]


def field_names(sfmc, key="CohortSync_Demo"):
    return [f["name"] for f in sfmc.state()["data_extensions"][key]["fields"]]


def test_check_connection_reports_columns_and_usable_targets(make_de):
    report = make_de().check_connection()

    assert report.ok
    assert "key column 'SubscriberKey'" in report.summary
    usable = [f.name for f in report.fields if f.is_target_compatible]
    assert usable == ["In_Demo_Cohort"]


def test_unknown_external_key_names_the_key(make_de):
    with pytest.raises(ConfigurationError) as caught:
        make_de(data_extension_key="Not_There").check_connection()

    assert "external key 'Not_There'" in str(caught.value)
    assert "External Key (not the name)" in str(caught.value)


def test_external_key_with_spaces_is_resolved(make_de, sfmc):
    sfmc.add_data_extension("Amplitude Engage", CONTACT_KEY_FIELDS)

    report = make_de(data_extension_key="Amplitude Engage", key_column="Contact Key").check_connection()

    assert "key column 'Contact Key'" in report.summary


def test_missing_key_column_is_named(make_de, sfmc):
    sfmc.add_data_extension("Amplitude Engage", CONTACT_KEY_FIELDS)

    with pytest.raises(TargetValidationError) as caught:
        make_de(data_extension_key="Amplitude Engage").check_connection()

    assert "no column 'SubscriberKey'" in str(caught.value)
    assert "Contact Key" in str(caught.value)


def test_key_column_that_is_not_the_primary_key_is_refused(make_de, sfmc):
    sfmc.add_data_extension("Wrong_Key", [
        {"name": "Id", "type": "Text", "isPrimaryKey": True},
        {"name": "SubscriberKey", "type": "Text"},
        {"name": "In_Spring", "type": "Boolean"},
    ])
    connector = make_de(data_extension_key="Wrong_Key")

    with pytest.raises(TargetValidationError) as caught:
        connector.validate_target(target("In_Spring"))

    assert "'SubscriberKey'" in str(caught.value)
    assert "not its primary key" in str(caught.value)
    assert "(Id)" in str(caught.value)


def test_target_column_of_the_wrong_type_names_column_and_type(make_de):
    with pytest.raises(TargetValidationError) as caught:
        make_de().validate_target(target("Email"))

    assert "'Email'" in str(caught.value)
    assert "is EmailAddress" in str(caught.value)
    assert caught.value.code == "target_wrong_type"


def test_columns_compare_case_insensitively(make_de, sfmc):
    make_de(key_column="subscriberkey").validate_target(target("in_demo_cohort"))

    assert field_names(sfmc) == ["SubscriberKey", "Email", "In_Demo_Cohort"]


def test_missing_column_is_created_as_nullable_boolean_and_verified(make_de, sfmc, sleeps):
    sfmc.configure(field_add_delay_reads=2)

    make_de().validate_target(target("In_Spring_Promo"))

    created = sfmc.state()["data_extensions"]["CohortSync_Demo"]["fields"][-1]
    assert (created["name"], created["type"], created["isNullable"]) == ("In_Spring_Promo", "Boolean", True)
    assert len(sleeps.calls) >= 1  # it polled until the column appeared


def test_missing_column_is_not_created_when_the_sync_forbids_it(make_de, sfmc):
    with pytest.raises(TargetValidationError) as caught:
        make_de().validate_target(target("In_Spring_Promo", create_missing_field=False))

    assert "named exactly 'In_Spring_Promo'" in str(caught.value)
    assert "In_Spring_Promo" not in field_names(sfmc)


def test_column_that_never_appears_is_reported(make_de, sfmc, sleeps):
    sfmc.configure(field_add_delay_reads=1000)

    with pytest.raises(TargetValidationError) as caught:
        make_de().validate_target(target("In_Spring_Promo"))

    assert "had not appeared" in str(caught.value)
    assert "create the column in Contact Builder" in str(caught.value)


def test_mapped_columns_must_exist(make_de):
    with pytest.raises(TargetValidationError) as caught:
        make_de().validate_target(target(property_mapping={"$email": "Email", "plan": "Plan"}))

    assert "'Plan'" in str(caught.value)
    assert "'Email'" not in str(caught.value)


def test_key_column_cannot_be_the_target(make_de):
    with pytest.raises(TargetValidationError):
        make_de().validate_target(target("SubscriberKey"))


def test_list_target_fields_offers_boolean_columns(make_de):
    fields = {f.name: f for f in make_de().list_target_fields()}

    assert fields["In_Demo_Cohort"].is_target_compatible
    assert not fields["Email"].is_target_compatible
    assert fields["Email"].type == "EmailAddress"
