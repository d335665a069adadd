"""Getting, caching and refreshing Marketo access tokens."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest
import responses

from destinations.errors import AuthenticationError, ConfigurationError
from destinations.marketo.connector import MarketoConnector

from .conftest import config_for

REAL = "https://123-abc-456.mktorest.com"
TOKEN_URL = f"{REAL}/identity/oauth/token"
DESCRIBE_URL = f"{REAL}/rest/v1/leads/describe.json"
DESCRIBE_OK = {"requestId": "a1#b2", "success": True, "result": [
    {"id": 1, "displayName": "Pro", "dataType": "boolean", "rest": {"name": "cohortPro", "readOnly": False}},
]}


def _connector(**kwargs) -> MarketoConnector:
    return MarketoConnector(config_for(REAL, client_secret="s3cr3t-value-xyz", **kwargs), sleep=lambda s: None)


@responses.activate
def test_credentials_go_in_a_form_body_and_the_token_in_the_bearer_header():
    responses.post(TOKEN_URL, json={"access_token": "tok-123:ab", "expires_in": 3599, "scope": "api@x.com"})
    responses.get(DESCRIBE_URL, json=DESCRIBE_OK)

    report = _connector().check_connection()

    assert report.ok and "api@x.com" in report.summary
    identity, describe = responses.calls
    assert "s3cr3t" not in identity.request.url
    assert parse_qs(identity.request.body) == {
        "grant_type": ["client_credentials"], "client_id": ["sandbox-client-id"],
        "client_secret": ["s3cr3t-value-xyz"],
    }
    assert describe.request.headers["Authorization"] == "Bearer tok-123:ab"
    assert "tok-123" not in describe.request.url


def test_one_token_is_shared_by_every_connector_until_it_expires(make_connector, marketo):
    make_connector().list_target_fields()
    make_connector().list_target_fields()

    calls = marketo.state()["calls"]
    assert calls["tokens_issued"] == 1
    assert calls["by_endpoint"]["POST /identity/oauth/token"] == 1
    assert calls["token_in_query"] == 0


def test_wrong_secret_is_refused_with_a_sentence_and_without_the_secret(make_connector):
    connector = make_connector(client_secret="wrong-secret-9f8e")

    with pytest.raises(AuthenticationError) as caught:
        connector.check_connection()

    message = str(caught.value)
    assert "client secret does not match" in message
    assert "Admin > LaunchPoint" in message
    assert "wrong-secret-9f8e" not in message


def test_unknown_client_id_is_refused_without_echoing_it(make_connector):
    with pytest.raises(AuthenticationError) as caught:
        make_connector(client_id="no-such-client-77").check_connection()

    assert "no API service has this client id" in str(caught.value)
    assert "no-such-client-77" not in str(caught.value)


@responses.activate
def test_base_url_without_identity_endpoint_is_a_configuration_error():
    responses.post(TOKEN_URL, status=404, body="<html>Not found</html>", content_type="text/html")

    with pytest.raises(ConfigurationError, match="REST endpoint from Admin > Web Services"):
        _connector().check_connection()


def test_expired_token_602_is_refreshed_once_and_the_call_retried(make_connector, marketo):
    connector = make_connector()
    connector.list_target_fields()
    marketo.configure(expire_tokens=True)

    fields = connector.list_target_fields()

    assert any(f.name == "cohortProUsers" for f in fields)
    calls = marketo.state()["calls"]
    assert calls["tokens_issued"] == 2
    assert calls["by_endpoint"]["GET /rest/v1/leads/describe.json"] == 3


def test_unknown_token_601_is_refreshed_once_and_the_call_retried(make_connector, marketo):
    connector = make_connector()
    connector.list_target_fields()
    marketo.reset()  # a restarted instance no longer knows the token

    fields = connector.list_target_fields()

    assert any(f.name == "cohortProUsers" for f in fields)
    calls = marketo.state()["calls"]
    assert calls["tokens_issued"] == 1
    assert calls["by_endpoint"]["GET /rest/v1/leads/describe.json"] == 2


@pytest.mark.parametrize("code", ["601", "602"])
@responses.activate
def test_token_refused_twice_stops_with_an_authentication_error(code):
    responses.post(TOKEN_URL, json={"access_token": "tok:ab", "expires_in": 3599})
    responses.get(DESCRIBE_URL, json={"requestId": "a#b", "success": False,
                                      "errors": [{"code": code, "message": "Access token invalid"}]})

    with pytest.raises(AuthenticationError, match="freshly issued access token"):
        _connector().list_target_fields()

    assert [c.request.url.split("?")[0] for c in responses.calls] == [TOKEN_URL, DESCRIBE_URL] * 2
