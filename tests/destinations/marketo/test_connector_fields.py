"""Listing Marketo lead fields and validating a sync's Boolean field."""

from __future__ import annotations

import pytest
import responses

from destinations.base import MembershipChange
from destinations.errors import TargetValidationError
from destinations.marketo.connector import MarketoConnector

from .conftest import config_for, target

REAL = "https://123-abc-456.mktorest.com"


def test_fields_list_rest_names_labels_and_which_can_hold_a_cohort(connector):
    fields = {f.name: f for f in connector.list_target_fields()}

    assert fields["cohortProUsers"].label == "Pro Users Cohort"
    assert fields["cohortProUsers"].is_target_compatible
    assert not fields["favoriteColor"].is_target_compatible  # a string
    assert not fields["cohortCrmLocked"].is_target_compatible  # read-only boolean
    assert fields["email"].type == "email"


def test_check_connection_summarises_what_syncs_can_use(connector):
    report = connector.check_connection()

    assert report.ok
    assert "6 of them writable Boolean fields" in report.summary


def test_missing_field_says_how_to_create_it(connector):
    with pytest.raises(TargetValidationError) as caught:
        connector.validate_target(target("cohortNope"))

    assert "Marketo has no lead field 'cohortNope'" in str(caught.value)
    assert "Create a Boolean custom field named 'cohortNope' in Marketo Admin > Field Management" in str(
        caught.value
    )


def test_display_name_is_resolved_and_pushes_use_the_rest_name(connector, marketo):
    sync_target = target("Pro Users Cohort")

    assert connector.validate_target(sync_target) == "cohortProUsers"
    outcomes = connector.push(sync_target, [MembershipChange("ann@example.com", True)])

    assert outcomes[0].ok
    lead = marketo.lead("ann@example.com")
    assert lead["cohortProUsers"] is True and "Pro Users Cohort" not in lead


def test_wrong_type_is_refused_naming_the_type(connector):
    with pytest.raises(TargetValidationError, match="is of type 'string', not Boolean"):
        connector.validate_target(target("Favorite Color"))


def test_read_only_field_is_refused(connector):
    with pytest.raises(TargetValidationError, match="read-only for the API"):
        connector.validate_target(target("cohortCrmLocked"))


def test_fields_created_later_are_found(connector, marketo):
    marketo.configure(fields=[{"name": "cohortTrialists", "displayName": "Trialists", "dataType": "boolean"}])

    assert connector.validate_target(target("Trialists")) == "cohortTrialists"


def test_two_fields_with_the_same_display_name_must_be_named_by_api_name(connector, marketo):
    marketo.configure(fields=[{"name": "cohortProUsers2", "displayName": "Pro Users Cohort"}])

    with pytest.raises(TargetValidationError, match="cohortProUsers, cohortProUsers2"):
        connector.validate_target(target("Pro Users Cohort"))
    assert connector.validate_target(target("cohortProUsers2")) == "cohortProUsers2"


@responses.activate
def test_field_deleted_during_a_run_stops_the_run():
    responses.post(f"{REAL}/identity/oauth/token", json={"access_token": "t:ab", "expires_in": 3599})
    responses.get(f"{REAL}/rest/v1/leads/describe.json", json={"success": True, "result": [
        {"id": 9, "displayName": "Gone", "dataType": "boolean", "rest": {"name": "cohortGone", "readOnly": False}},
    ]})
    responses.post(f"{REAL}/rest/v1/leads.json", json={"success": True, "result": [
        {"status": "skipped", "reasons": [{"code": "1006", "message": "Field 'cohortGone' not found"}]},
    ]})
    connector = MarketoConnector(config_for(REAL), sleep=lambda s: None)

    with pytest.raises(TargetValidationError, match="no longer has the lead field 'cohortGone'"):
        connector.push(target("cohortGone"), [MembershipChange("a@example.com", True)])
