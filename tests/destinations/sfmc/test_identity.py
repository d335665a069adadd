"""Subscriber / contact keys are checked locally and never altered."""

from __future__ import annotations

import pytest

from destinations.errors import InvalidIdentityError
from destinations.sfmc_contacts.connector import ContactsConnector
from destinations.sfmc_data_extension.connector import DataExtensionConnector
from tests.destinations.sfmc.conftest import official_config


@pytest.fixture(params=[DataExtensionConnector, ContactsConnector])
def connector(request):
    return request.param(official_config())


def test_key_is_trimmed_and_stringified(connector):
    assert connector.normalize_identity("  u_123 ") == "u_123"
    assert connector.normalize_identity(42) == "42"


def test_254_characters_is_accepted(connector):
    assert connector.normalize_identity("k" * 254) == "k" * 254


def test_longer_key_is_refused_with_the_limit(connector):
    with pytest.raises(InvalidIdentityError) as caught:
        connector.normalize_identity("k" * 255)

    assert "255 characters" in str(caught.value) and "254" in str(caught.value)


def test_colon_is_refused(connector):
    with pytest.raises(InvalidIdentityError) as caught:
        connector.normalize_identity("tenant:42")

    assert "':'" in str(caught.value)


@pytest.mark.parametrize("value", ["", "   ", None])
def test_empty_key_is_refused(connector, value):
    with pytest.raises(InvalidIdentityError):
        connector.normalize_identity(value)


def test_no_request_is_made_to_check_keys(connector):
    with pytest.raises(InvalidIdentityError):
        connector.normalize_identity("a:b")

    assert connector.api_calls == 0
