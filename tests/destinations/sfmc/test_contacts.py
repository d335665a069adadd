"""Contacts API connector: attribute discovery, validation, per-contact OK / FAIL."""

from __future__ import annotations

import time

import pytest

from destinations.base import MembershipChange
from destinations.errors import AuthenticationError, ConfigurationError, TargetValidationError
from destinations.sfmc_contacts.connector import ContactsConnector
from tests.destinations.sfmc.conftest import sandbox_config, target


def cohort(sfmc, key):
    return sfmc.state()["contacts"].get(key, {}).get("Email Demographics", {}).get("Cohort_Demo")


def test_check_connection_lists_the_attribute_sets_attributes(make_contacts):
    report = make_contacts().check_connection()

    assert report.ok
    assert [f.name for f in report.fields] == ["First Name", "Last Name", "Cohort_Demo"]
    assert "Attribute set 'Email Demographics'" in report.summary


def test_attribute_sets_are_paged_and_read_by_id(make_contacts, sfmc):
    sfmc.configure(definitions_page_size=1, definitions_include_attributes=False)

    fields = make_contacts(attribute_set="MobileConnect Demographics").list_target_fields()

    assert {f.name: f.type for f in fields} == {"Mobile Number": "Phone", "Locale": "Locale"}
    calls = sfmc.state()["calls"]["by_endpoint"]
    assert calls["GET /contacts/v1/attributeSetDefinitions"] == 3
    assert calls["GET /contacts/v1/attributeSetDefinitions/{id}"] == 1


def test_unknown_attribute_set_lists_the_ones_that_exist(make_contacts):
    with pytest.raises(ConfigurationError) as caught:
        make_contacts(attribute_set="Amplitude Engage").check_connection()

    assert "no attribute set named 'Amplitude Engage'" in str(caught.value)
    assert "'Email Demographics'" in str(caught.value)


def test_unknown_attribute_names_attribute_and_set(make_contacts):
    with pytest.raises(TargetValidationError) as caught:
        make_contacts().validate_target(target("Cohort_Spring"))

    assert "has no attribute 'Cohort_Spring'" in str(caught.value)
    assert "'Email Demographics'" in str(caught.value)


def test_attribute_added_in_sfmc_validates(make_contacts, sfmc):
    sfmc.add_attribute("Cohort_Spring")

    make_contacts().validate_target(target("cohort_spring"))


def test_non_text_attribute_is_refused(make_contacts):
    with pytest.raises(TargetValidationError) as caught:
        make_contacts(attribute_set="Email Addresses").validate_target(target("HTML Enabled"))

    assert "is Boolean" in str(caught.value)
    assert "'realized'" in str(caught.value)


def test_members_are_realized_and_leavers_exited(make_contacts, sfmc):
    connector = make_contacts()
    batch = [MembershipChange(f"c{i}", is_member=i != 3) for i in range(6)]

    outcomes = connector.push(target("Cohort_Demo"), batch)

    assert [o.identity for o in outcomes] == [c.identity for c in batch]
    assert all(o.ok for o in outcomes)
    assert cohort(sfmc, "c0") == "realized"
    assert cohort(sfmc, "c3") == "exited"
    assert sfmc.state()["calls"]["by_endpoint"]["PATCH /contacts/v1/contacts"] == 6


def test_custom_member_and_exited_values(make_contacts, sfmc):
    sync = target("Cohort_Demo", member_value="in", exited_value="out")

    make_contacts().push(sync, [MembershipChange("x", True), MembershipChange("y", False)])

    assert (cohort(sfmc, "x"), cohort(sfmc, "y")) == ("in", "out")


def test_fail_answer_is_that_contacts_failure(make_contacts, sfmc):
    sfmc.configure(reject_identities={"c2": "Contact is in a restricted state."})

    outcomes = make_contacts().push(target("Cohort_Demo"), [MembershipChange(f"c{i}", True) for i in range(4)])

    failed = [o for o in outcomes if not o.ok]
    assert [(o.identity, o.message) for o in failed] == [("c2", "Contact is in a restricted state.")]
    assert failed[0].code == "ValidationFailed"
    assert cohort(sfmc, "c2") is None and cohort(sfmc, "c3") == "realized"


def test_unknown_attribute_at_push_fails_each_contact_with_sfmcs_reason(make_contacts):
    outcomes = make_contacts().push(target("Cohort_Nope"), [MembershipChange("a", True), MembershipChange("b", False)])

    assert all(not o.ok and not o.retriable for o in outcomes)
    assert "Attribute 'Cohort_Nope' was not found in attribute set 'Email Demographics'" in outcomes[0].message


def test_missing_permissions_stop_the_push(make_contacts, sfmc):
    connector = make_contacts()
    connector.check_connection()
    sfmc.configure(insufficient_privileges=True)

    with pytest.raises(AuthenticationError) as caught:
        connector.push(target("Cohort_Demo"), [MembershipChange("a", True), MembershipChange("b", True)])

    assert "List and Subscribers" in str(caught.value)


def test_contact_that_keeps_failing_is_a_retriable_failure(make_contacts, sfmc):
    connector = make_contacts()
    connector.check_connection()
    sfmc.configure(fail_next=5)

    outcomes = connector.push(target("Cohort_Demo"), [MembershipChange("a", True)])

    assert not outcomes[0].ok and outcomes[0].retriable


def test_parallel_pushes_stay_within_the_servers_concurrency(sandbox, sfmc):
    # The server allows 2 requests at a time and says Retry-After: 0; the connector's own
    # concurrency limit of 2 means nobody is ever turned away.
    sfmc.configure(max_concurrent_requests=2, latency_seconds=0.02, retry_after=0)
    config = sandbox_config(sandbox, kind="sfmc_contacts", options={"requests_per_second": 1000, "max_concurrency": 2})
    connector = ContactsConnector(config, sleep=time.sleep)
    connector.check_connection()
    before = sfmc.state()["calls"]["total"]

    outcomes = connector.push(target("Cohort_Demo"), [MembershipChange(f"p{i}", True) for i in range(12)])

    assert all(o.ok for o in outcomes)
    assert sfmc.state()["calls"]["total"] - before == 12


def test_batch_size_is_configurable(make_contacts):
    assert make_contacts().send_plan(10_000).batch_size == 50
    assert make_contacts(options={"rowset_batch_size": 20}).send_plan(10_000).batch_size == 20
