"""Marketo's envelope errors: what is retried, what stops a run, and what users read."""

from __future__ import annotations

import datetime as dt

import pytest
import responses
from django.core.cache import cache

from destinations.errors import (
    AuthenticationError,
    EndpointNotAllowedError,
    PermanentError,
    QuotaExhaustedError,
    TransientError,
)
from destinations.marketo.client import MarketoClient, quota_resets_at
from destinations.marketo.connector import MarketoConnector

from .conftest import config_for

REAL = "https://123-abc-456.mktorest.com"


def _failing(code: str, message: str) -> dict:
    return {"requestId": "1f#2e", "success": False, "errors": [{"code": code, "message": message}]}


def test_rate_limit_606_waits_a_quarter_window_per_refusal_and_retries_span_a_window(connector, marketo, sleeps):
    marketo.configure(inject=[{"code": "606", "times": 2, "path": "describe"}])

    assert connector.list_target_fields()
    assert sleeps == [5.0, 5.0]
    # The transport's attempts cover a whole 20-second window before the call fails.
    assert connector.client.transport.retry.max_attempts - 1 >= 20.0 / 5.0


def test_concurrency_limit_615_backs_off_briefly_and_retries(connector, marketo, sleeps):
    marketo.configure(inject=[{"code": "615", "times": 1}])

    assert connector.list_target_fields()
    assert len(sleeps) == 1 and 0 < sleeps[0] < 5


@pytest.mark.parametrize("code", ["604", "608", "611", "713", "502"])
def test_transient_errors_are_retried(connector, marketo, sleeps, code):
    marketo.configure(inject=[{"code": code, "times": 2, "path": "describe"}])

    fields = connector.list_target_fields()

    assert any(f.name == "cohortProUsers" for f in fields)
    assert len(sleeps) == 2
    assert marketo.state()["calls"]["by_endpoint"]["GET /rest/v1/leads/describe.json"] == 3


def test_a_transient_error_that_persists_fails_after_a_bounded_number_of_attempts(connector, marketo, sleeps):
    marketo.configure(inject=[{"code": "611", "times": 50}])

    with pytest.raises(TransientError, match="temporary problem"):
        connector.list_target_fields()
    assert len(sleeps) == 4


def test_daily_quota_607_stops_at_once_and_says_when_it_resumes(connector, marketo, sleeps):
    marketo.configure(daily_quota=1)
    connector.list_target_fields()

    with pytest.raises(QuotaExhaustedError) as caught:
        connector.list_target_fields()

    error = caught.value
    assert sleeps == []
    assert "resume after the quota resets at midnight America/Chicago" in str(error)
    resumes = dt.datetime.fromisoformat(error.resumes_at)
    assert dt.timedelta(0) < resumes - dt.datetime.now(dt.UTC) <= dt.timedelta(days=1)


@responses.activate
def test_quota_message_names_the_local_and_utc_reset_time():
    responses.post(f"{REAL}/identity/oauth/token", json={"access_token": "t:ab", "expires_in": 3599})
    responses.get(f"{REAL}/rest/v1/leads/describe.json", json=_failing("607", "Daily quota reached"))
    client = MarketoClient(base_url=REAL, client_id="id", client_secret="secret", sleep=lambda s: None,
                           now=lambda: dt.datetime(2026, 3, 5, 15, 0, tzinfo=dt.UTC))

    with pytest.raises(QuotaExhaustedError) as caught:
        client.describe_leads()

    assert "2026-03-06 00:00 CST (2026-03-06 06:00 UTC)" in str(caught.value)
    assert caught.value.resumes_at == "2026-03-06T06:00:00+00:00"


@pytest.mark.parametrize(("now", "expected"), [
    (dt.datetime(2026, 1, 10, 5, 59, tzinfo=dt.UTC), dt.datetime(2026, 1, 10, 6, 0, tzinfo=dt.UTC)),
    (dt.datetime(2026, 1, 10, 6, 0, tzinfo=dt.UTC), dt.datetime(2026, 1, 11, 6, 0, tzinfo=dt.UTC)),
    (dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC), dt.datetime(2026, 7, 2, 5, 0, tzinfo=dt.UTC)),
])
def test_quota_resets_at_midnight_chicago_time_in_winter_and_summer(now, expected):
    assert quota_resets_at(now) == expected


def test_access_denied_603_says_which_permission_is_missing(connector, marketo, sleeps):
    marketo.configure(inject=[{"code": "603", "times": 1}])

    with pytest.raises(AuthenticationError, match="'Read-Write Lead' permission"):
        connector.list_target_fields()
    assert sleeps == []


@responses.activate
def test_unknown_codes_fail_with_the_code_and_marketos_message():
    responses.post(f"{REAL}/identity/oauth/token", json={"access_token": "t:ab", "expires_in": 3599})
    responses.get(f"{REAL}/rest/v1/leads/describe.json", json=_failing("799", "Something unusual"))
    connector = MarketoConnector(config_for(REAL), sleep=lambda s: None)

    with pytest.raises(PermanentError) as caught:
        connector.list_target_fields()

    assert caught.value.code == "799"
    assert 'code 799. Marketo said: "Something unusual"' in str(caught.value)


@pytest.mark.parametrize("base_url", [
    "https://marketo.attacker.example.com",
    "http://123-abc-456.mktorest.com",
    "http://10.0.0.5:8080/marketo",
])
@responses.activate
def test_hosts_outside_the_allow_list_are_refused_before_any_request(base_url):
    connector = MarketoConnector(config_for(base_url), sleep=lambda s: None)

    with pytest.raises(EndpointNotAllowedError, match="COHORTSYNC_ALLOWED_API_HOSTS"):
        connector.check_connection()
    assert len(responses.calls) == 0


def test_a_pasted_rest_or_identity_suffix_is_ignored(make_connector, sandbox):
    for suffix in ("/rest", "/identity/", "/rest/v1"):
        assert make_connector(base_url=sandbox.marketo_base_url + suffix).check_connection().ok


def test_no_secret_or_token_appears_in_any_message():
    secret, token = "very-secret-client-secret", "token-value-1234:ab"
    failures = [
        _failing("603", "Access denied"),
        _failing("1003", f"Bad request for token {token}"),
        _failing("601", "Access token invalid"),
    ]
    messages = []
    for body in failures:
        cache.clear()
        with responses.RequestsMock() as mock:
            mock.post(f"{REAL}/identity/oauth/token", json={"access_token": token, "expires_in": 3599})
            mock.get(f"{REAL}/rest/v1/leads/describe.json", json=body)
            connector = MarketoConnector(config_for(REAL, client_secret=secret), sleep=lambda s: None)
            with pytest.raises(PermanentError) as caught:
                connector.list_target_fields()
            messages.append(str(caught.value))
    messages.append(repr(config_for(REAL, client_secret=secret)))

    assert "Bad request for token [hidden]" in messages[1]
    for message in messages:
        assert secret not in message and token not in message
