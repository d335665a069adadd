"""Async upserts: submit, poll through "not found", map per-row results back to users."""

from __future__ import annotations

import json

import pytest
import responses

from destinations.base import MembershipChange
from destinations.errors import (
    UNEXPECTED_RESPONSE,
    ConfigurationError,
    UnexpectedResponseError,
    error_retriable,
)
from destinations.sfmc_data_extension.connector import DataExtensionConnector
from tests.destinations.sfmc.conftest import OFFICIAL_AUTH, OFFICIAL_REST, official_config, target

ASYNC_OPTIONS = {"requests_per_second": 1000, "async_threshold": 10, "rowset_batch_size": 50}
STATUS = "GET /data/v1/async/{id}/status"
SUBMIT = "PUT /data/v1/async/dataextensions/{key}/rows"


def changes(count: int) -> list[MembershipChange]:
    return [MembershipChange(identity=f"a{i}", is_member=i % 2 == 0) for i in range(count)]


def stored(sfmc):
    return {row["SubscriberKey"]: row.get("In_Demo_Cohort") for row in sfmc.rows("CohortSync_Demo")}


def test_large_batch_goes_async_and_failures_map_to_their_users(make_de, sfmc, sleeps):
    sfmc.configure(reject_identities={"a3": "Email: invalid", "a71": "", "a119": "Column [x] is bad."},
                   async_not_found_polls=2, async_pending_polls=2)
    connector = make_de(options=ASYNC_OPTIONS)
    batch = changes(120)

    outcomes = connector.push(target(), batch)

    failed = {o.identity: o.message for o in outcomes if not o.ok}
    assert set(failed) == {"a3", "a71", "a119"}
    assert failed["a3"] == "Email: invalid"
    assert failed["a119"] == "Column [x] is bad."
    assert [o.identity for o in outcomes] == [c.identity for c in batch]
    assert stored(sfmc) == {c.identity: c.is_member for c in batch if c.identity not in failed}
    calls = sfmc.state()["calls"]["by_endpoint"]
    assert calls[SUBMIT] == 1
    assert "POST /hub/v1/dataevents/{key}/rowset" not in calls
    assert calls[STATUS] == 5  # two "not found", two pending/executing, then complete
    assert sleeps.calls[:4] == [0.5, 1.0, 2.0, 4.0]


def test_results_are_read_across_pages(make_de, sfmc):
    sfmc.configure(reject_identities={"a12": "row twelve", "a33": "row thirty-three"}, results_page_size=7,
                   async_not_found_polls=0, async_pending_polls=0)

    outcomes = make_de(options=ASYNC_OPTIONS).push(target(), changes(40))

    assert {o.identity: o.message for o in outcomes if not o.ok} == {"a12": "row twelve", "a33": "row thirty-three"}


def test_deadlocked_rows_are_sent_again_once(make_de, sfmc):
    sfmc.configure(deadlock_identities=["a5", "a6"])

    outcomes = make_de(options=ASYNC_OPTIONS).push(target(), changes(20))

    assert all(o.ok for o in outcomes)
    assert sfmc.state()["calls"]["by_endpoint"][SUBMIT] == 2
    assert stored(sfmc)["a5"] is False and stored(sfmc)["a6"] is True


def test_request_level_error_fails_every_row_as_retriable(make_de, sfmc):
    sfmc.configure(async_request_error=True)

    outcomes = make_de(options=ASYNC_OPTIONS).push(target(), changes(15))

    assert all(not o.ok and o.retriable for o in outcomes)
    assert "status Error" in outcomes[0].message


def test_job_that_never_finishes_is_reported_after_the_wait(make_de, sfmc, sleeps, settings):
    settings.COHORTSYNC_SFMC_ASYNC_WAIT_SECONDS = 20
    sfmc.configure(async_not_found_polls=10**6)

    outcomes = make_de(options=ASYNC_OPTIONS).push(target(), changes(15))

    assert all(not o.ok and o.retriable and o.code == "async_timeout" for o in outcomes)
    assert "had not finished" in outcomes[0].message
    assert 20 <= sum(sleeps.calls) <= 30
    assert max(sleeps.calls) <= 10


def test_batches_above_async_batch_size_are_split(make_de, sfmc):
    options = {**ASYNC_OPTIONS, "async_batch_size": 40}

    outcomes = make_de(options=options).push(target(), changes(100))

    assert all(o.ok for o in outcomes)
    assert sfmc.state()["calls"]["by_endpoint"][SUBMIT] == 3
    assert len(stored(sfmc)) == 100


def test_unknown_data_extension_is_rejected_at_submit(make_de):
    with pytest.raises(ConfigurationError) as caught:
        make_de(data_extension_key="Gone", options=ASYNC_OPTIONS).push(target(), changes(15))

    assert "Failed to resolve the Custom Object" in str(caught.value)
    assert caught.value.code == "CustomObjectNotFound"


def register_token():
    responses.add(responses.POST, f"{OFFICIAL_AUTH}/v2/token", json={
        "access_token": "t", "expires_in": 1079, "rest_instance_url": OFFICIAL_REST})


@responses.activate
def test_async_body_is_flat_rows_and_integer_error_codes_are_read(sleeps):
    register_token()
    responses.add(responses.PUT, f"{OFFICIAL_REST}data/v1/async/dataextensions/key:Cohorts/rows",
                  status=202, json={"requestId": "req-1", "resultMessages": []})
    responses.add(responses.GET, f"{OFFICIAL_REST}data/v1/async/req-1/status", json={
        "requestId": "x", "resultMessages": [{"resultCode": "AsyncRequestStatusNotFound", "message": "..."}]})
    responses.add(responses.GET, f"{OFFICIAL_REST}data/v1/async/req-1/status", json={
        "status": {"requestStatus": "Complete", "resultStatus": "Has Errors", "hasErrors": True}})
    responses.add(responses.GET, f"{OFFICIAL_REST}data/v1/async/req-1/results", json={
        "page": 1, "pageSize": 50, "count": 3, "items": [
            {"status": "OK", "message": "Upserted DataExtensionObject"},
            {"status": "Error", "errorCode": 2, "message": "Cannot locate the existing record.",
             "errors": [{"name": "contactkey", "errorMessage": "Column [contactkey] does not allow null value."}]},
            {"status": "OK", "message": "Upserted DataExtensionObject"}]})
    connector = DataExtensionConnector(
        official_config(options={"requests_per_second": 1000, "async_threshold": 1, "rowset_batch_size": 2}),
        sleep=sleeps,
    )

    outcomes = connector.push(target("In_Spring"), [MembershipChange(i, True) for i in ("a", "b", "c")])

    body = json.loads(responses.calls[1].request.body)
    assert body == {"items": [{"SubscriberKey": k, "In_Spring": True} for k in ("a", "b", "c")]}
    assert [o.ok for o in outcomes] == [True, False, True]
    assert outcomes[1].code == "2"
    assert "does not allow null value" in outcomes[1].message


@responses.activate
def test_missing_results_are_never_counted_as_written(sleeps):
    register_token()
    responses.add(responses.PUT, f"{OFFICIAL_REST}data/v1/async/dataextensions/key:Cohorts/rows",
                  status=202, json={"requestId": "req-2", "resultMessages": []})
    responses.add(responses.GET, f"{OFFICIAL_REST}data/v1/async/req-2/status", json={
        "status": {"requestStatus": "Complete", "resultStatus": "Has Errors", "hasErrors": True}})
    responses.add(responses.GET, f"{OFFICIAL_REST}data/v1/async/req-2/results", json={
        "items": [{"status": "OK"}]})
    connector = DataExtensionConnector(
        official_config(options={"requests_per_second": 1000, "async_threshold": 1, "rowset_batch_size": 1}),
        sleep=sleeps,
    )

    # One result for two rows: which row it belongs to is unknown, so neither is written.
    with pytest.raises(UnexpectedResponseError) as caught:
        connector.push(target(), [MembershipChange("a", True), MembershipChange("b", True)])

    assert caught.value.code == UNEXPECTED_RESPONSE and error_retriable(caught.value)
    assert "per-row results of queued upsert req-2" in caught.value.message


@responses.activate
def test_submit_rejection_in_envelope_shape_is_explained(sleeps):
    register_token()
    responses.add(responses.PUT, f"{OFFICIAL_REST}data/v1/async/dataextensions/key:Cohorts/rows",
                  status=400, json={"message": "Parameter Cohorts is invalid.", "errorcode": 10001})
    connector = DataExtensionConnector(
        official_config(options={"requests_per_second": 1000, "async_threshold": 1, "rowset_batch_size": 1}),
        sleep=sleeps,
    )

    with pytest.raises(Exception) as caught:
        connector.push(target(), [MembershipChange("a", True), MembershipChange("b", True)])

    assert "Parameter Cohorts is invalid" in str(caught.value)
    assert caught.value.code == "10001"
