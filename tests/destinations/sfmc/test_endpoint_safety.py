"""Only official SFMC hosts (https) and COHORTSYNC_ALLOWED_API_HOSTS are ever contacted."""

from __future__ import annotations

import pytest
import responses

from destinations.errors import EndpointNotAllowedError
from destinations.sfmc_contacts.connector import ContactsConnector
from destinations.sfmc_data_extension.connector import DataExtensionConnector
from tests.destinations.sfmc.conftest import OFFICIAL_AUTH, official_config


@responses.activate
def test_auth_host_outside_the_allow_list_is_refused_before_any_request():
    connector = DataExtensionConnector(official_config(auth_base_url="http://intranet.example.com:8080/sfmc/auth"))

    with pytest.raises(EndpointNotAllowedError) as caught:
        connector.check_connection()

    assert "COHORTSYNC_ALLOWED_API_HOSTS" in str(caught.value)
    assert len(responses.calls) == 0
    assert connector.api_calls == 0


@responses.activate
def test_plain_http_to_an_official_host_is_refused():
    connector = ContactsConnector(
        official_config(kind="sfmc_contacts", auth_base_url="http://mcx.auth.marketingcloudapis.com")
    )

    with pytest.raises(EndpointNotAllowedError):
        connector.check_connection()

    assert len(responses.calls) == 0


@responses.activate
def test_rest_instance_outside_the_allow_list_is_refused_after_the_token():
    responses.add(responses.POST, f"{OFFICIAL_AUTH}/v2/token", json={
        "access_token": "t", "expires_in": 1079, "rest_instance_url": "https://attacker.example.net/"})
    connector = DataExtensionConnector(official_config())

    with pytest.raises(EndpointNotAllowedError):
        connector.check_connection()

    assert [c.request.url for c in responses.calls] == [f"{OFFICIAL_AUTH}/v2/token"]


def test_allowed_host_from_settings_is_used(make_de, settings):
    settings.COHORTSYNC_ALLOWED_API_HOSTS = []

    with pytest.raises(EndpointNotAllowedError):
        make_de().check_connection()

    settings.COHORTSYNC_ALLOWED_API_HOSTS = ["127.0.0.1"]
    assert make_de().check_connection().ok
