"""The SFMC emulator behaves like SFMC where the production client would notice."""

from __future__ import annotations

import re

import pytest
import requests

DEMO_GUID_RE = re.compile(r"^[0-9a-f-]{36}$")


def token(sandbox, **body):
    payload = {"grant_type": "client_credentials", "client_id": "sandbox-client-id",
               "client_secret": "sandbox-client-secret", **body}
    return requests.post(f"{sandbox.sfmc_auth_base_url}/v2/token", json=payload, timeout=5)


def rest(sandbox, method, path, access_token, **kwargs):
    return requests.request(method, f"{sandbox.url}/sfmc/rest/{path}",
                            headers={"Authorization": f"Bearer {access_token}"}, timeout=5, **kwargs)


def test_token_accepts_form_bodies_and_reports_sfmc_fields(sandbox):
    response = requests.post(f"{sandbox.sfmc_auth_base_url}/v2/token", data={
        "grant_type": "client_credentials", "client_id": "sandbox-client-id",
        "client_secret": "sandbox-client-secret"}, timeout=5)

    body = response.json()
    assert response.status_code == 200
    assert body["expires_in"] == 1079
    assert body["rest_instance_url"] == f"{sandbox.url}/sfmc/rest/"


def test_token_bad_credentials_and_blocked_switch(sandbox, sfmc):
    assert token(sandbox, client_secret="x").json()["error"] == "invalid_client"
    sfmc.configure(token_throttled=True)

    blocked = token(sandbox)

    assert blocked.status_code == 429 and "Retry-After" not in blocked.headers
    assert blocked.json()["errorcode"] == 50200


def test_rest_routes_need_a_token(sandbox):
    response = requests.get(f"{sandbox.url}/sfmc/rest/contacts/v1/attributeSetDefinitions", timeout=5)

    assert response.status_code == 401
    assert response.json() == {"message": "Not Authorized", "errorcode": 0,
                               "documentation": response.json()["documentation"]}


def test_throttle_styles(sandbox, sfmc):
    access = token(sandbox).json()["access_token"]
    sfmc.configure(throttle_next=1, throttle_style="50100", retry_after=7)
    limited = rest(sandbox, "GET", "contacts/v1/attributeSetDefinitions", access)
    sfmc.configure(throttle_next=1, throttle_style="text")
    text = rest(sandbox, "GET", "contacts/v1/attributeSetDefinitions", access)

    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    assert limited.json()["retryAfter"] == 7 and limited.json()["errorcode"] == 50100
    assert text.status_code == 429 and text.text == "Too Many Requests"


def test_bad_guid_and_unknown_columns(sandbox, sfmc):
    access = token(sandbox).json()["access_token"]
    bad = rest(sandbox, "GET", "data/v1/customobjects/not-a-guid/fields", access)
    ok = rest(sandbox, "POST", "hub/v1/dataevents/key:cohortsync_demo/rowset", access,
              json=[{"keys": {"subscriberkey": "a"}, "values": {"in_demo_cohort": "true", "Typo_Column": 1}}])

    assert bad.status_code == 400 and bad.json()["errorcode"] == 10001
    assert ok.status_code == 200
    assert sfmc.rows("CohortSync_Demo") == [{"SubscriberKey": "a", "In_Demo_Cohort": True}]


def test_async_insert_refuses_duplicates_and_status_times_are_utc_minus_6(sandbox, sfmc):
    sfmc.configure(async_not_found_polls=0, async_pending_polls=0)
    access = token(sandbox).json()["access_token"]
    rows = {"items": [{"SubscriberKey": "a", "In_Demo_Cohort": True}]}
    rest(sandbox, "POST", "data/v1/async/dataextensions/key:CohortSync_Demo/rows", access, json=rows)
    second = rest(sandbox, "POST", "data/v1/async/dataextensions/key:CohortSync_Demo/rows", access, json=rows)
    request_id = second.json()["requestId"]

    status = rest(sandbox, "GET", f"data/v1/async/{request_id}/status", access).json()["status"]
    results = rest(sandbox, "GET", f"data/v1/async/{request_id}/results", access).json()

    assert second.status_code == 202
    assert status["resultStatus"] == "Has Errors"
    assert "PRIMARY KEY" in results["items"][0]["message"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", status["callDateTime"])


def test_async_endpoints_can_be_slow_while_token_and_schema_reads_are_fast(sandbox, sfmc):
    import time

    sfmc.configure(latency_seconds=0.0, async_latency_seconds=0.3, async_not_found_polls=0, async_pending_polls=0)
    started = time.monotonic()
    access = token(sandbox).json()["access_token"]
    fast = time.monotonic() - started
    started = time.monotonic()
    rest(sandbox, "PUT", "data/v1/async/dataextensions/key:CohortSync_Demo/rows", access,
         json={"items": [{"SubscriberKey": "a", "In_Demo_Cohort": True}]})
    slow = time.monotonic() - started

    assert fast < 0.2 <= 0.3 <= slow


def test_async_rejects_more_than_32000_items(sandbox):
    access = token(sandbox).json()["access_token"]
    items = [{"SubscriberKey": f"k{i}"} for i in range(32_001)]

    response = rest(sandbox, "PUT", "data/v1/async/dataextensions/key:CohortSync_Demo/rows", access,
                    json={"items": items})

    assert response.status_code == 400


def test_http_config_reset_and_state_limit(sandbox, sfmc):
    base = f"{sandbox.url}/sfmc/_sandbox"
    assert requests.post(f"{base}/config", json={"nonsense": 1}, timeout=5).status_code == 400
    assert requests.post(f"{base}/config", json={"reject_identities": {"x": "no"}}, timeout=5).status_code == 200
    sfmc.add_data_extension("Big", [{"name": "K", "type": "Text", "isPrimaryKey": True},
                                    {"name": "V", "type": "Number"}])
    access = token(sandbox).json()["access_token"]
    rest(sandbox, "POST", "hub/v1/dataevents/key:Big/rowset", access,
         json=[{"keys": {"K": f"k{i}"}, "values": {"V": i}} for i in range(5)])

    state = requests.get(f"{base}/state?limit=2", timeout=5).json()

    assert sfmc.config["reject_identities"] == {"x": "no"}
    assert state["data_extensions"]["Big"]["row_count"] == 5
    assert len(state["data_extensions"]["Big"]["rows"]) == 2
    assert DEMO_GUID_RE.match(state["data_extensions"]["CohortSync_Demo"]["id"])
    assert state["calls"]["tokens_issued"] == 1
    assert requests.post(f"{base}/reset", timeout=5).json() == {"ok": True}
    assert "Big" not in sfmc.state()["data_extensions"]


def test_configure_rejects_unknown_knobs(sfmc):
    with pytest.raises(ValueError, match="Unknown sandbox setting"):
        sfmc.configure(rate=5)


def test_http_config_adds_contact_attributes(sandbox, sfmc):
    base = f"{sandbox.url}/sfmc/_sandbox"
    response = requests.post(f"{base}/config", json={"attributes": [{"name": "Fleet_07"}]}, timeout=5)

    assert response.status_code == 200
    sets = {s["name"]: s["attributes"] for s in sfmc.state()["attribute_sets"]}
    assert "Fleet_07" in sets["Email Demographics"]


def test_calls_refused_for_the_tenant_rate_are_counted(sandbox, sfmc):
    access = token(sandbox).json()["access_token"]
    sfmc.configure(requests_per_second=2)
    answers = [rest(sandbox, "GET", "contacts/v1/attributeSetDefinitions", access).status_code for _ in range(4)]

    assert answers.count(429) >= 1
    assert sfmc.state()["calls"]["refused"] == answers.count(429)


def test_the_tenant_rate_counts_arrivals_in_order_whatever_order_the_lock_lets_them_in(sfmc):
    # Two requests arrived at 0.000 and 0.005 s; the later one took the lock first. At 1.003 s
    # the one from 0.000 has left the second and must not refuse the call.
    sfmc.configure(requests_per_second=2)
    with sfmc._lock:
        assert sfmc._fault(100.005) is None
        assert sfmc._fault(100.000) is None

        assert sfmc._fault(101.003) is None
        assert sfmc.calls["refused"] == 0
