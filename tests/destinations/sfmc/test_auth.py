"""Tokens: fetched, cached, refreshed once on 401, and every credential failure explained."""

from __future__ import annotations

import json

import pytest
import responses

from destinations.errors import AuthenticationError, ConfigurationError, TransientError
from destinations.sfmc_data_extension.connector import DataExtensionConnector
from tests.destinations.sfmc.conftest import OFFICIAL_AUTH, OFFICIAL_REST, SECRET, official_config

TOKEN_URL = f"{OFFICIAL_AUTH}/v2/token"
FIELDS_OK = {"id": "de-1", "fields": [{"name": "SubscriberKey", "type": "Text", "isPrimaryKey": True}]}


def token_body(token: str = "tok-1") -> dict:
    return {"access_token": token, "token_type": "Bearer", "expires_in": 1079, "rest_instance_url": OFFICIAL_REST}


def test_token_is_issued_once_and_shared_by_connectors(make_de, sfmc):
    make_de().check_connection()
    make_de().check_connection()

    assert sfmc.state()["calls"]["tokens_issued"] == 1


def test_bad_secret_says_which_credentials_to_check(make_de, sfmc):
    connector = make_de(client_secret="wrong-secret-123")

    with pytest.raises(AuthenticationError) as caught:
        connector.check_connection()

    message = str(caught.value)
    assert "SFMC refused the client id/secret" in message
    assert "Installed Package" in message
    assert "wrong-secret-123" not in message
    assert caught.value.code == "invalid_client"


def test_pasted_auth_url_is_reduced_to_the_subdomain():
    connector = DataExtensionConnector(
        official_config(subdomain="https://mcExample123.auth.marketingcloudapis.com/v2/token")
    )

    assert connector.client.auth_base_url == "https://mcexample123.auth.marketingcloudapis.com"
    assert connector.api_calls == 0


def test_unusable_subdomain_is_refused_before_any_request():
    connector = DataExtensionConnector(official_config(subdomain="https://example.com/login"))

    with pytest.raises(ConfigurationError) as caught:
        connector.check_connection()

    assert "not an SFMC subdomain" in str(caught.value)
    assert connector.api_calls == 0


def test_auth_url_without_token_endpoint_is_a_configuration_error(make_de, sandbox):
    connector = make_de(auth_base_url=f"{sandbox.url}/sfmc/nothing-here")

    with pytest.raises(ConfigurationError) as caught:
        connector.check_connection()

    assert "no SFMC token endpoint" in str(caught.value)
    assert "subdomain" in str(caught.value)


@responses.activate
def test_unreachable_auth_host_names_the_host_and_the_subdomain(sleeps):
    import requests

    responses.add(responses.POST, TOKEN_URL, body=requests.ConnectionError("no such host"))
    connector = DataExtensionConnector(official_config(), sleep=sleeps)

    with pytest.raises(TransientError) as caught:
        connector.check_connection()

    assert "mcexample123.auth.marketingcloudapis.com" in str(caught.value)
    assert "check the subdomain" in str(caught.value)
    assert connector.api_calls == 5  # retried with backoff before giving up
    assert len(sleeps.calls) == 4


def test_missing_permissions_explain_which_package_permissions(make_de, sfmc):
    sfmc.configure(insufficient_privileges=True)

    with pytest.raises(AuthenticationError) as caught:
        make_de().check_connection()

    message = str(caught.value)
    assert "lacks a permission" in message
    assert "Data Extensions read and write" in message
    assert caught.value.code == "20002"


def test_expired_token_is_refreshed_once_and_the_call_retried(make_de, sfmc):
    connector = make_de()
    connector.check_connection()
    sfmc.configure(expire_tokens=True)

    fields = connector.list_target_fields()

    assert {f.name for f in fields} >= {"SubscriberKey", "In_Demo_Cohort"}
    assert sfmc.state()["calls"]["tokens_issued"] == 2


def test_tokens_refused_even_after_refresh_stop_with_one_retry(make_de, sfmc):
    # Every token is dead on arrival: one refresh, then a clear error instead of a loop.
    sfmc.configure(token_ttl_seconds=0)
    connector = make_de()

    with pytest.raises(AuthenticationError) as caught:
        connector.check_connection()

    assert "freshly issued access token" in str(caught.value)
    assert sfmc.state()["calls"]["tokens_issued"] == 2


@responses.activate
def test_second_401_after_refresh_is_an_authentication_error():
    responses.add(responses.POST, TOKEN_URL, json=token_body("tok-a"))
    responses.add(responses.POST, TOKEN_URL, json=token_body("tok-b"))
    responses.add(
        responses.GET, f"{OFFICIAL_REST}data/v1/customobjectdata/key/Cohorts/rowset",
        json={"message": "Not Authorized", "errorcode": 0}, status=401,
    )
    connector = DataExtensionConnector(official_config())

    with pytest.raises(AuthenticationError) as caught:
        connector.check_connection()

    token_calls = [c for c in responses.calls if c.request.url == TOKEN_URL]
    assert len(token_calls) == 2
    assert "tok-a" not in str(caught.value) and "tok-b" not in str(caught.value)
    sent = [c.request.headers["Authorization"] for c in responses.calls if "rowset" in c.request.url]
    assert sent == ["Bearer tok-a", "Bearer tok-b"]


@responses.activate
def test_token_request_sends_account_id_and_instance_url_is_normalised():
    responses.add(
        responses.POST, TOKEN_URL,
        json={**token_body(), "rest_instance_url": "mcexample123.rest.marketingcloudapis.com"},
    )
    responses.add(
        responses.GET, f"{OFFICIAL_REST}data/v1/customobjectdata/key/Cohorts/rowset",
        json={"customObjectId": "de-1", "items": []},
    )
    responses.add(responses.GET, f"{OFFICIAL_REST}data/v1/customobjects/de-1/fields", json=FIELDS_OK)
    connector = DataExtensionConnector(official_config(account_id="7281698"))

    connector.check_connection()

    sent = json.loads(responses.calls[0].request.body)
    assert sent == {"grant_type": "client_credentials", "client_id": "cid",
                    "client_secret": "very-secret-value", "account_id": 7281698}
    assert responses.calls[1].request.url.startswith(OFFICIAL_REST)


@responses.activate
def test_blocked_token_endpoint_is_retried(sleeps):
    responses.add(
        responses.POST, TOKEN_URL, status=429,
        json={"message": "Your requests are temporarily blocked.", "errorcode": 50200},
    )
    responses.add(responses.POST, TOKEN_URL, json=token_body())
    responses.add(
        responses.GET, f"{OFFICIAL_REST}data/v1/customobjectdata/key/Cohorts/rowset",
        json={"customObjectId": "de-1"},
    )
    responses.add(responses.GET, f"{OFFICIAL_REST}data/v1/customobjects/de-1/fields", json=FIELDS_OK)

    report = DataExtensionConnector(official_config(), sleep=sleeps).check_connection()

    assert report.ok
    assert len(sleeps.calls) == 1


@responses.activate
def test_refused_business_unit_mentions_the_mid():
    responses.add(
        responses.POST, TOKEN_URL, status=400,
        json={"error": "invalid_grant", "error_description": "The client's access to the account is denied."},
    )

    with pytest.raises(AuthenticationError) as caught:
        DataExtensionConnector(official_config(account_id="999")).check_connection()

    assert "account id (MID)" in str(caught.value)
    assert "access to the account is denied" in str(caught.value)


@responses.activate
def test_secret_echoed_by_the_server_is_hidden():
    responses.add(
        responses.POST, TOKEN_URL, status=401,
        json={"error": "invalid_client", "error_description": "Bad secret very-secret-value for cid"},
    )

    with pytest.raises(AuthenticationError) as caught:
        DataExtensionConnector(official_config()).check_connection()

    assert "very-secret-value" not in str(caught.value)
    assert "[hidden]" in str(caught.value)


def test_no_secret_or_token_in_any_sandbox_error(make_de, sfmc):
    failures = []
    sfmc.configure(insufficient_privileges=True)
    for connector in (make_de(), make_de(client_secret="nope-nope"), make_de(data_extension_key="Missing")):
        try:
            connector.check_connection()
        except Exception as exc:  # noqa: BLE001 - collecting every failure's text
            failures.append(str(exc))
    sfmc.configure(insufficient_privileges=False)
    try:
        make_de(data_extension_key="Missing").check_connection()
    except Exception as exc:  # noqa: BLE001
        failures.append(str(exc))

    assert len(failures) == 4
    issued = list(sfmc.tokens)
    for text in failures:
        assert SECRET not in text and "nope-nope" not in text
        assert not any(token in text for token in issued)
