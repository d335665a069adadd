"""Destination services: connection checks, target fields and secret rotation."""

from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.test import override_settings

from destinations.base import ConnectionReport
from destinations.encryption import encrypt_secret, is_encrypted_with_current_key
from destinations.errors import AuthenticationError, EndpointNotAllowedError
from destinations.models import Destination
from destinations.selectors import (
    ConnectionState,
    destination_connection_state,
    destination_has_secret,
    destination_is_sandbox,
    destinations_for_listing,
    destinations_in_state,
)
from destinations.services import (
    destination_check_connection,
    destination_secrets_rotate,
    destination_target_fields,
)
from tests.destinations.destadmin_fakes import FIELDS, fake_connector
from tests.factories import DestinationFactory, SyncFactory

pytestmark = pytest.mark.django_db

OTHER_KEY = Fernet.generate_key().decode()


def raw_secret(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT client_secret FROM {Destination._meta.db_table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def set_raw_secret(pk: int, value: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Destination._meta.db_table} SET client_secret = %s WHERE id = %s", [value, pk]
        )


def secret_encrypted_with(key: str, plaintext: str) -> str:
    with override_settings(FIELD_ENCRYPTION_KEYS=[key]):
        return encrypt_secret(plaintext)


# --- destination_check_connection --------------------------------------------------------


def test_successful_check_stores_connected_and_what_it_read():
    destination = DestinationFactory(client_secret="s3cret-value")

    with fake_connector() as configs:
        report = destination_check_connection(destination=destination)

    assert report.ok
    assert list(report.fields) == list(FIELDS)
    assert configs[0].client_secret == "s3cret-value"
    stored = Destination.objects.get(pk=destination.pk)
    assert stored.is_connected is True
    assert stored.connection_checked_at is not None
    assert stored.connection_error == ""
    assert stored.connection_summary == "read 2 columns of COHORTS_DE"
    assert destination_connection_state(stored) == ConnectionState.CONNECTED


def test_failed_check_stores_the_destinations_message():
    destination = DestinationFactory()
    error = AuthenticationError(
        "SFMC refused the client id/secret: Invalid client ID.", code="invalid_client", status=401
    )

    with fake_connector(error):
        report = destination_check_connection(destination=destination)

    assert not report.ok
    assert report.summary == "SFMC refused the client id/secret: Invalid client ID. [invalid_client]"
    stored = Destination.objects.get(pk=destination.pk)
    assert stored.is_connected is False
    assert stored.connection_error == report.summary
    assert stored.connection_summary == ""
    assert destination_connection_state(stored) == ConnectionState.FAILING


def test_a_later_success_clears_the_previous_error():
    destination = DestinationFactory(is_connected=False, connection_error="old problem")

    with fake_connector():
        destination_check_connection(destination=destination)

    destination.refresh_from_db()
    assert destination.is_connected is True
    assert destination.connection_error == ""


def test_a_secret_leaked_into_an_error_message_is_redacted():
    destination = DestinationFactory(client_secret="hunter2-secret")

    with fake_connector(AuthenticationError("Bad credentials for hunter2-secret")):
        report = destination_check_connection(destination=destination)

    assert "hunter2-secret" not in report.summary
    assert "hunter2-secret" not in Destination.objects.get(pk=destination.pk).connection_error


def test_disallowed_endpoint_is_reported_as_the_connection_error():
    destination = DestinationFactory()

    with fake_connector(EndpointNotAllowedError("Refusing to contact http://evil:1.")):
        report = destination_check_connection(destination=destination)

    assert not report.ok
    assert "Refusing to contact" in Destination.objects.get(pk=destination.pk).connection_error


def test_undecryptable_secret_is_reported_not_raised():
    destination = DestinationFactory()
    set_raw_secret(destination.pk, secret_encrypted_with(OTHER_KEY, "s3cret"))
    loaded = Destination.objects.defer("client_secret").get(pk=destination.pk)

    with fake_connector() as configs:
        report = destination_check_connection(destination=loaded)

    assert not report.ok
    assert "cannot be decrypted" in report.summary
    assert configs == []
    assert Destination.objects.defer("client_secret").get(pk=destination.pk).is_connected is False


def test_a_crashing_connector_gives_a_pointer_to_the_log(caplog):
    destination = DestinationFactory()

    with fake_connector(KeyError("rest_instance_url")), caplog.at_level(logging.ERROR):
        report = destination_check_connection(destination=destination)

    assert not report.ok
    assert "failed unexpectedly (KeyError)" in report.summary
    assert "server log" in report.summary
    assert "crashed" in caplog.text


def test_check_does_not_overwrite_settings_edited_meanwhile():
    destination = DestinationFactory(data_extension_key="OLD_KEY")
    Destination.objects.filter(pk=destination.pk).update(data_extension_key="NEW_KEY")

    with fake_connector():
        destination_check_connection(destination=destination)

    assert Destination.objects.get(pk=destination.pk).data_extension_key == "NEW_KEY"


def test_check_leaves_the_stored_ciphertext_alone():
    destination = DestinationFactory()
    before = raw_secret(destination.pk)

    with fake_connector():
        destination_check_connection(destination=destination)

    assert raw_secret(destination.pk) == before


# --- destination_target_fields -----------------------------------------------------------


def test_target_fields_come_from_the_connector():
    destination = DestinationFactory()

    with fake_connector():
        fields = destination_target_fields(destination=destination)

    assert [f.name for f in fields] == ["SubscriberKey", "Cohort_Pro"]


@pytest.mark.parametrize("error", [AuthenticationError("no"), RuntimeError("bug")])
def test_target_fields_are_empty_when_the_destination_cannot_be_read(error):
    destination = DestinationFactory()

    with fake_connector(error):
        assert destination_target_fields(destination=destination) == []


def test_target_fields_are_empty_when_the_secret_cannot_be_decrypted():
    destination = DestinationFactory()
    set_raw_secret(destination.pk, secret_encrypted_with(OTHER_KEY, "s3cret"))
    loaded = Destination.objects.defer("client_secret").get(pk=destination.pk)

    with fake_connector(ConnectionReport(ok=True, summary="", fields=FIELDS)):
        assert destination_target_fields(destination=loaded) == []


# --- destination_secrets_rotate ----------------------------------------------------------


def test_rotation_reencrypts_old_secrets_with_the_first_key(settings):
    current_keys = list(settings.FIELD_ENCRYPTION_KEYS)
    old = DestinationFactory(name="Old", client_secret="")
    set_raw_secret(old.pk, secret_encrypted_with(current_keys[1], "old-secret"))
    current = DestinationFactory(name="Current", client_secret="current-secret")
    DestinationFactory(name="No secret", client_secret="")
    current_ciphertext = raw_secret(current.pk)

    report = destination_secrets_rotate()

    assert (report.reencrypted, report.already_current, report.empty) == (1, 1, 1)
    assert report.undecryptable == []
    assert is_encrypted_with_current_key(raw_secret(old.pk))
    assert raw_secret(current.pk) == current_ciphertext
    with override_settings(FIELD_ENCRYPTION_KEYS=current_keys[:1]):
        assert Destination.objects.get(pk=old.pk).client_secret == "old-secret"


def test_rotation_is_idempotent(settings):
    destination = DestinationFactory(client_secret="")
    set_raw_secret(destination.pk, secret_encrypted_with(settings.FIELD_ENCRYPTION_KEYS[1], "x"))

    first = destination_secrets_rotate()
    after_first = raw_secret(destination.pk)
    second = destination_secrets_rotate()

    assert first.reencrypted == 1
    assert (second.reencrypted, second.already_current) == (0, 1)
    assert raw_secret(destination.pk) == after_first


def test_rotation_names_destinations_no_key_can_decrypt_and_rotates_the_rest(settings):
    lost = DestinationFactory(name="Lost key", client_secret="")
    set_raw_secret(lost.pk, secret_encrypted_with(OTHER_KEY, "gone"))
    lost_ciphertext = raw_secret(lost.pk)
    fine = DestinationFactory(name="Fine", client_secret="")
    set_raw_secret(fine.pk, secret_encrypted_with(settings.FIELD_ENCRYPTION_KEYS[1], "ok"))

    report = destination_secrets_rotate()

    assert report.undecryptable == ["Lost key"]
    assert report.reencrypted == 1
    assert raw_secret(lost.pk) == lost_ciphertext


# --- selectors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, False),
        ({"auth_base_url": "https://mc-test-tenant.auth.marketingcloudapis.com"}, False),
        ({"auth_base_url": "http://127.0.0.1:8765/sfmc/auth"}, True),
        ({"marketo": True}, False),
        ({"marketo": True, "base_url": "http://localhost:8765/marketo"}, True),
    ],
)
def test_destination_is_sandbox_only_for_non_official_hosts(overrides, expected):
    assert destination_is_sandbox(DestinationFactory.build(**overrides)) is expected


def test_listing_annotates_sync_count_and_secret_without_decrypting():
    with_syncs = DestinationFactory(name="A")
    SyncFactory.create_batch(2, destination=with_syncs)
    no_secret = DestinationFactory(name="B", client_secret="")
    # A secret nobody can decrypt must not break the listing.
    broken = DestinationFactory(name="C")
    set_raw_secret(broken.pk, secret_encrypted_with(OTHER_KEY, "x"))

    rows = {d.name: d for d in destinations_for_listing()}

    assert rows["A"].sync_count == 2 and rows["A"].has_secret is True
    assert rows["B"].sync_count == 0 and rows["B"].has_secret is False
    assert destination_has_secret(rows["C"]) is True
    assert destination_has_secret(Destination.objects.defer("client_secret").get(pk=no_secret.pk)) is False


def test_connection_state_filter():
    connected = DestinationFactory(name="ok")
    failing = DestinationFactory(name="bad")
    never = DestinationFactory(name="never")
    with fake_connector():
        destination_check_connection(destination=connected)
    with fake_connector(AuthenticationError("no")):
        destination_check_connection(destination=failing)

    queryset = Destination.objects.all()
    assert list(destinations_in_state(queryset, ConnectionState.CONNECTED)) == [connected]
    assert list(destinations_in_state(queryset, ConnectionState.FAILING)) == [failing]
    assert list(destinations_in_state(queryset, ConnectionState.NEVER_CHECKED)) == [never]
