"""Synchronous rowset writes: batch limits, non-atomic failures isolated to their users."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import responses

from destinations.base import MembershipChange
from destinations.errors import PermanentError, TransientError
from destinations.sfmc_data_extension.connector import DataExtensionConnector
from tests.destinations.sfmc.conftest import OFFICIAL_AUTH, OFFICIAL_REST, official_config, target

ROWSET_URL = f"{OFFICIAL_REST}hub/v1/dataevents/key:Cohorts/rowset"


def echo_rows() -> None:
    """SFMC's answer to a rowset it saved: the rows sent, echoed in order."""
    responses.add_callback(responses.POST, ROWSET_URL, content_type="application/json",
                           callback=lambda request: (200, {}, request.body))


def changes(count: int, *, prefix: str = "u") -> list[MembershipChange]:
    return [MembershipChange(identity=f"{prefix}{i}", is_member=i % 3 != 0) for i in range(count)]


def stored(sfmc, key="CohortSync_Demo", column="In_Demo_Cohort"):
    return {row["SubscriberKey"]: row.get(column) for row in sfmc.rows(key)}


@pytest.mark.parametrize(
    ("options", "total", "expected"),
    [({}, 120, 50), ({"rowset_batch_size": 10}, 120, 10),
     ({}, 1000, 50), ({}, 1001, 32000), ({"async_threshold": 100, "async_batch_size": 5000}, 101, 5000)],
)
def test_batch_size_follows_run_size_and_options(make_de, options, total, expected):
    assert make_de(options={"requests_per_second": 1000, **options}).send_plan(total).batch_size == expected


def test_batch_is_written_in_one_rowset_call_with_booleans(make_de, sfmc):
    connector = make_de()
    batch = changes(50)

    outcomes = connector.push(target(), batch)

    assert [o.identity for o in outcomes] == [c.identity for c in batch]
    assert all(o.ok for o in outcomes)
    assert stored(sfmc) == {c.identity: c.is_member for c in batch}
    calls = sfmc.state()["calls"]
    assert calls["by_endpoint"]["POST /hub/v1/dataevents/{key}/rowset"] == 1
    assert calls["max_rowset_rows"] == 50


def test_rejected_users_are_isolated_and_the_rest_written(make_de, sfmc):
    bad = {"u0": "Email: not a valid email address.", "u25": "", "u49": "Column [Plan] is too long."}
    sfmc.configure(reject_identities=bad)
    batch = changes(50)

    outcomes = make_de().push(target(), batch)

    failed = {o.identity: o for o in outcomes if not o.ok}
    assert set(failed) == set(bad)
    assert failed["u0"].message == "Email: not a valid email address."
    assert "not a valid email address" in failed["u25"].message
    assert failed["u49"].message == "Column [Plan] is too long."
    assert not any(o.retriable for o in failed.values())
    assert stored(sfmc) == {c.identity: c.is_member for c in batch if c.identity not in bad}
    assert sfmc.state()["calls"]["max_rowset_rows"] <= 50


def test_leaving_writes_false_and_keeps_the_row(make_de, sfmc):
    connector = make_de()
    connector.push(target(), [MembershipChange("alice", True), MembershipChange("bob", True)])

    connector.push(target(), [MembershipChange("alice", False)])

    assert stored(sfmc) == {"alice": False, "bob": True}


def test_unknown_target_column_is_an_error_not_silence(make_de):
    with pytest.raises(PermanentError) as caught:
        make_de().push(target("No_Such_Column"), changes(2))

    assert "At least one existing field is required" in str(caught.value)


def test_mapped_properties_follow_value_rules(make_de, sfmc):
    sfmc.add_data_extension("Profiles", [
        {"name": "SubscriberKey", "type": "Text", "isPrimaryKey": True},
        {"name": "Plan", "type": "Text"}, {"name": "Signup Date", "type": "Date"},
        {"name": "Tags", "type": "Text"}, {"name": "In_Spring", "type": "Boolean"},
    ])
    mapping = {"plan": "Plan", "signup": "Signup Date", "tags": "Tags", "missing": "Tags"}
    change = MembershipChange("u1", True, properties={
        "plan": "pro", "signup": dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC), "tags": ["a", "b"],
    })

    outcomes = make_de(data_extension_key="Profiles").push(target("In_Spring", property_mapping=mapping), [change])

    assert outcomes[0].ok
    assert sfmc.rows("Profiles") == [{"SubscriberKey": "u1", "Plan": "pro",
                                      "Signup Date": "2024-05-01T12:30:00Z", "In_Spring": True}]


def test_oversized_request_is_split_until_it_fits(make_de, sfmc):
    sfmc.configure(max_payload_bytes=3000)
    batch = [MembershipChange(f"user-{i:03d}-" + "x" * 100, True) for i in range(40)]

    outcomes = make_de().push(target(), batch)

    assert all(o.ok for o in outcomes)
    assert len(sfmc.rows("CohortSync_Demo")) == 40


@responses.activate
def test_rowset_body_is_a_top_level_array_of_keys_and_values():
    responses.add(responses.POST, f"{OFFICIAL_AUTH}/v2/token", json={
        "access_token": "t", "expires_in": 1079, "rest_instance_url": OFFICIAL_REST})
    echo_rows()

    DataExtensionConnector(official_config()).push(
        target("In_Spring"), [MembershipChange("a", True), MembershipChange("b", False)]
    )

    assert json.loads(responses.calls[1].request.body) == [
        {"keys": {"SubscriberKey": "a"}, "values": {"In_Spring": True}},
        {"keys": {"SubscriberKey": "b"}, "values": {"In_Spring": False}},
    ]


@responses.activate
def test_a_payload_is_encoded_once_and_that_encoding_is_the_body(monkeypatch):
    from destinations.sfmc import common

    responses.add(responses.POST, f"{OFFICIAL_AUTH}/v2/token", json={
        "access_token": "t", "expires_in": 1079, "rest_instance_url": OFFICIAL_REST})
    echo_rows()
    encodings: list[bytes] = []
    real = common.json_bytes
    monkeypatch.setattr(common, "json_bytes", lambda value: encodings.append(real(value)) or encodings[-1])

    DataExtensionConnector(official_config()).push(target("In_Spring"), changes(50))

    request = responses.calls[1].request
    assert encodings == [request.body]  # sized and sent from one encoding
    assert request.headers["Content-Type"] == "application/json"
    assert len(json.loads(request.body)) == 50


def test_payloads_over_the_size_limit_are_cut_and_each_slice_is_its_own_body():
    from destinations.sfmc.common import chunks_by_size

    items = [{"k": "x" * 40, "i": i} for i in range(10)]

    slices = list(chunks_by_size(items, max_items=4, max_bytes=200))

    assert [(start, end) for start, end, _ in slices] == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert all(json.loads(body) == items[start:end] and len(body) <= 200 for start, end, body in slices)


@responses.activate
def test_aggregate_error_without_details_is_retried(sleeps):
    responses.add(responses.POST, f"{OFFICIAL_AUTH}/v2/token", json={
        "access_token": "t", "expires_in": 1079, "rest_instance_url": OFFICIAL_REST})
    responses.add(responses.POST, ROWSET_URL, status=400, json={"message": "Unable to save rows", "errorcode": 10006})
    echo_rows()

    outcomes = DataExtensionConnector(official_config(), sleep=sleeps).push(target(), changes(3))

    assert all(o.ok for o in outcomes)
    assert len(sleeps.calls) == 1


@responses.activate
def test_aggregate_error_without_details_that_persists_is_transient(sleeps):
    responses.add(responses.POST, f"{OFFICIAL_AUTH}/v2/token", json={
        "access_token": "t", "expires_in": 1079, "rest_instance_url": OFFICIAL_REST})
    responses.add(responses.POST, ROWSET_URL, status=400, json={"message": "Unable to save rows", "errorcode": 10006})

    with pytest.raises(TransientError) as caught:
        DataExtensionConnector(official_config(), sleep=sleeps).push(target(), changes(3))

    assert caught.value.code == "10006"


def test_unknown_data_extension_on_push_is_permanent(make_de):
    with pytest.raises(PermanentError) as caught:
        make_de(data_extension_key="Gone").push(target(), changes(2))

    assert "data extension 'Gone'" in str(caught.value)
    assert "HTTP 404" in str(caught.value)
