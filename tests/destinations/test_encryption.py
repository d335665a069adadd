"""Destination secrets are encrypted at rest, rotate, and never leak through lookups."""

from __future__ import annotations

import io
import json

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.core.management import call_command
from django.core.serializers.base import DeserializationError
from django.db import connection
from django.test import override_settings

from destinations.encryption import (
    CIPHERTEXT_PREFIX,
    SecretDecryptionError,
    decrypt_secret,
    encrypt_secret,
    is_encrypted_with_current_key,
)
from destinations.models import Destination
from destinations.services import destination_check_connection
from tests.factories import DestinationFactory

pytestmark = pytest.mark.django_db

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


def raw_secret(destination: Destination) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT client_secret FROM {Destination._meta.db_table} WHERE id = %s", [destination.pk]
        )
        return cursor.fetchone()[0]


def test_secret_round_trips_through_the_database():
    destination = DestinationFactory(client_secret="s3cret-value")

    assert Destination.objects.get(pk=destination.pk).client_secret == "s3cret-value"


def test_database_column_holds_ciphertext_not_plaintext():
    destination = DestinationFactory(client_secret="plain-Secret-123")

    stored = raw_secret(destination)

    assert "plain-Secret-123" not in stored
    assert stored.startswith(CIPHERTEXT_PREFIX)


def test_same_secret_encrypts_differently_each_time():
    first = DestinationFactory(client_secret="same-secret")
    second = DestinationFactory(client_secret="same-secret")

    assert raw_secret(first) != raw_secret(second)


def test_empty_secret_is_stored_empty_so_unset_is_visible_without_decrypting():
    destination = DestinationFactory(client_secret="")

    assert raw_secret(destination) == ""
    assert Destination.objects.get(pk=destination.pk).client_secret == ""


def test_secret_encrypted_with_an_unknown_key_raises_a_clear_error():
    with override_settings(FIELD_ENCRYPTION_KEYS=[OLD_KEY]):
        destination = DestinationFactory(client_secret="s3cret-value")
    ciphertext = raw_secret(destination)

    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW_KEY]):
        with pytest.raises(SecretDecryptionError) as excinfo:
            Destination.objects.get(pk=destination.pk)

    message = str(excinfo.value)
    assert "FIELD_ENCRYPTION_KEYS" in message
    assert ciphertext not in message
    assert ciphertext[len(CIPHERTEXT_PREFIX):] not in message


def test_value_without_the_encrypted_prefix_is_refused_not_returned():
    with pytest.raises(SecretDecryptionError):
        decrypt_secret("looks-like-a-plaintext-secret")


def test_old_key_still_decrypts_after_a_new_key_is_put_first():
    with override_settings(FIELD_ENCRYPTION_KEYS=[OLD_KEY]):
        destination = DestinationFactory(client_secret="s3cret-value")

    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW_KEY, OLD_KEY]):
        assert Destination.objects.get(pk=destination.pk).client_secret == "s3cret-value"
        assert not is_encrypted_with_current_key(raw_secret(destination))
        # New writes use the first key.
        assert is_encrypted_with_current_key(encrypt_secret("another"))


def test_invalid_key_configuration_says_how_to_make_one():
    with override_settings(FIELD_ENCRYPTION_KEYS=["not-a-fernet-key"]):
        with pytest.raises(ImproperlyConfigured, match="generate_encryption_key"):
            encrypt_secret("x")


def test_no_keys_at_all_is_a_configuration_error():
    with override_settings(FIELD_ENCRYPTION_KEYS=[]):
        with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS is empty"):
            encrypt_secret("x")


@pytest.mark.parametrize(
    "lookup",
    ["client_secret__startswith", "client_secret__icontains", "client_secret__in",
     "client_secret__gt", "client_secret__regex"],
)
def test_lookups_that_could_reveal_the_secret_are_refused(lookup):
    DestinationFactory(client_secret="abc123")
    value = ["abc123"] if lookup.endswith("__in") else "a"

    with pytest.raises(FieldError):
        list(Destination.objects.filter(**{lookup: value}))


def test_exact_lookup_with_a_value_is_refused_because_it_could_never_match():
    DestinationFactory(client_secret="abc123")

    with pytest.raises(FieldError, match="encrypted"):
        list(Destination.objects.filter(client_secret="abc123"))


def test_exact_empty_and_isnull_lookups_tell_set_from_unset():
    with_secret = DestinationFactory(client_secret="abc123")
    without_secret = DestinationFactory(client_secret="")

    assert list(Destination.objects.filter(client_secret="")) == [without_secret]
    assert list(Destination.objects.exclude(client_secret="")) == [with_secret]
    assert Destination.objects.filter(client_secret__isnull=False).count() == 2


# --- dumpdata / loaddata -----------------------------------------------------------------


def dump_destinations(tmp_path) -> tuple[str, list[dict]]:
    out = io.StringIO()
    call_command("dumpdata", "destinations", format="json", stdout=out)
    path = tmp_path / "destinations.json"
    path.write_text(out.getvalue())
    return str(path), json.loads(out.getvalue())


def test_dumpdata_writes_the_encrypted_secret_never_the_plaintext(tmp_path):
    DestinationFactory(name="Growth DE", client_secret="plain-Secret-123")
    DestinationFactory(name="No secret", client_secret="")

    path, records = dump_destinations(tmp_path)

    text = open(path).read()
    assert "plain-Secret-123" not in text
    secrets = {r["fields"]["name"]: r["fields"]["client_secret"] for r in records
               if r["model"] == "destinations.destination"}
    assert secrets["No secret"] == ""
    assert secrets["Growth DE"].startswith(CIPHERTEXT_PREFIX)
    assert decrypt_secret(secrets["Growth DE"]) == "plain-Secret-123"


def test_loaddata_of_a_dump_restores_the_same_secret_encrypted_once(tmp_path):
    destination = DestinationFactory(name="Growth DE", client_secret="plain-Secret-123")
    path, _ = dump_destinations(tmp_path)
    Destination.objects.all().delete()

    call_command("loaddata", path, stdout=io.StringIO())

    restored = Destination.objects.get(pk=destination.pk)
    assert restored.client_secret == "plain-Secret-123"
    stored = raw_secret(restored)
    assert stored.startswith(CIPHERTEXT_PREFIX)
    # Encrypted once: the column decrypts straight to the secret, not to another ciphertext.
    assert decrypt_secret(stored) == "plain-Secret-123"


def test_loaddata_of_a_dump_made_with_an_older_key_works_while_that_key_is_listed(tmp_path):
    with override_settings(FIELD_ENCRYPTION_KEYS=[OLD_KEY]):
        DestinationFactory(name="Growth DE", client_secret="plain-Secret-123")
        path, _ = dump_destinations(tmp_path)
        Destination.objects.all().delete()

    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW_KEY, OLD_KEY]):
        call_command("loaddata", path, stdout=io.StringIO())
        restored = Destination.objects.get(name="Growth DE")
        assert restored.client_secret == "plain-Secret-123"
        assert is_encrypted_with_current_key(raw_secret(restored))


def test_loaddata_refuses_a_secret_no_key_decrypts_instead_of_using_the_ciphertext(tmp_path):
    with override_settings(FIELD_ENCRYPTION_KEYS=[OLD_KEY]):
        DestinationFactory(name="Growth DE", client_secret="plain-Secret-123")
        path, _ = dump_destinations(tmp_path)
        Destination.objects.all().delete()

    with override_settings(FIELD_ENCRYPTION_KEYS=[NEW_KEY]):
        with pytest.raises(DeserializationError) as excinfo:
            call_command("loaddata", path, stdout=io.StringIO())

    assert "FIELD_ENCRYPTION_KEYS" in str(excinfo.value)
    assert not Destination.objects.exists()


def test_loaddata_of_an_old_plaintext_dump_encrypts_the_secret(tmp_path):
    destination = DestinationFactory(name="Growth DE", client_secret="x")
    path, records = dump_destinations(tmp_path)
    records[0]["fields"]["client_secret"] = "plain-from-an-old-dump"
    (tmp_path / "destinations.json").write_text(json.dumps(records))
    Destination.objects.all().delete()

    call_command("loaddata", path, stdout=io.StringIO())

    assert Destination.objects.get(pk=destination.pk).client_secret == "plain-from-an-old-dump"
    assert raw_secret(destination).startswith(CIPHERTEXT_PREFIX)


@pytest.mark.e2e
def test_a_destination_restored_from_a_dump_still_connects(tmp_path, sandbox):
    destination = DestinationFactory(
        name="Sandbox DE", auth_base_url=sandbox.sfmc_auth_base_url, client_id="sandbox-client-id",
        client_secret="sandbox-client-secret", data_extension_key="CohortSync_Demo",
    )
    path, _ = dump_destinations(tmp_path)
    Destination.objects.all().delete()
    call_command("loaddata", path, stdout=io.StringIO())

    report = destination_check_connection(destination=Destination.objects.get(pk=destination.pk))

    assert report.ok, report.summary
