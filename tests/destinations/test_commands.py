"""check_destination, rotate_encryption_keys and generate_encryption_key."""

from __future__ import annotations

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import override_settings

from destinations.encryption import encrypt_secret, is_encrypted_with_current_key
from destinations.errors import AuthenticationError
from destinations.models import Destination
from tests.destinations.destadmin_fakes import fake_connector
from tests.factories import DestinationFactory

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def set_raw_secret(pk: int, value: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Destination._meta.db_table} SET client_secret = %s WHERE id = %s", [value, pk]
        )


def raw_secret(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT client_secret FROM {Destination._meta.db_table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


# --- check_destination -------------------------------------------------------------------


def test_check_destination_prints_connected_and_the_fields_it_read():
    DestinationFactory(name="Growth DE")

    with fake_connector():
        out, _ = run("check_destination", "Growth DE")

    assert "Connected: read 2 columns of COHORTS_DE" in out
    assert "Cohort_Pro (Cohort Pro): Boolean, usable as a sync target" in out
    assert "SubscriberKey: Text, not a sync target" in out
    assert Destination.objects.get(name="Growth DE").is_connected is True


def test_check_destination_exits_1_with_the_specific_error():
    DestinationFactory(name="Growth DE", client_secret="hunter2-secret")

    with fake_connector(AuthenticationError("SFMC refused the client secret.", code="invalid_client")):
        with pytest.raises(CommandError) as excinfo:
            run("check_destination", "Growth DE")

    assert excinfo.value.returncode == 1
    assert str(excinfo.value) == "Not connected: SFMC refused the client secret. [invalid_client]"
    assert "hunter2" not in str(excinfo.value)


def test_check_destination_exits_2_for_an_unknown_name():
    DestinationFactory(name="Growth DE")

    with fake_connector() as configs:
        with pytest.raises(CommandError) as excinfo:
            run("check_destination", "Growht DE")

    assert excinfo.value.returncode == 2
    assert "No destination is named 'Growht DE'" in str(excinfo.value)
    assert "Growth DE" in str(excinfo.value)
    assert configs == []


def test_check_destination_reports_an_undecryptable_secret():
    destination = DestinationFactory(name="Old key")
    with override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        set_raw_secret(destination.pk, encrypt_secret("x"))

    with fake_connector():
        with pytest.raises(CommandError) as excinfo:
            run("check_destination", "Old key")

    assert excinfo.value.returncode == 1
    assert "cannot be decrypted" in str(excinfo.value)


# --- rotate_encryption_keys --------------------------------------------------------------


def test_rotate_reencrypts_and_reports_counts(settings):
    destination = DestinationFactory(client_secret="")
    set_raw_secret(destination.pk, encrypt_secret_with(settings.FIELD_ENCRYPTION_KEYS[1], "old"))
    DestinationFactory(client_secret="current")

    out, _ = run("rotate_encryption_keys")
    again, _ = run("rotate_encryption_keys")

    assert "Re-encrypted 1 secret(s) with the current key; 1 already used it" in out
    assert "Re-encrypted 0 secret(s) with the current key; 2 already used it" in again
    assert is_encrypted_with_current_key(raw_secret(destination.pk))


def test_rotate_names_the_destination_no_key_can_decrypt():
    destination = DestinationFactory(name="Marketo prod", client_secret="")
    set_raw_secret(destination.pk, encrypt_secret_with(Fernet.generate_key().decode(), "lost"))

    with pytest.raises(CommandError) as excinfo:
        run("rotate_encryption_keys")

    assert excinfo.value.returncode == 1
    assert "'Marketo prod'" in str(excinfo.value)
    assert "Keep the old keys" in str(excinfo.value)


def encrypt_secret_with(key: str, plaintext: str) -> str:
    with override_settings(FIELD_ENCRYPTION_KEYS=[key]):
        return encrypt_secret(plaintext)


# --- generate_encryption_key -------------------------------------------------------------


def test_generate_encryption_key_prints_a_usable_fresh_key():
    first, hint = run("generate_encryption_key")
    second, _ = run("generate_encryption_key")

    key = first.strip()
    assert key != second.strip()
    assert Fernet(key.encode()).decrypt(Fernet(key.encode()).encrypt(b"ok")) == b"ok"
    assert "rotate_encryption_keys" in hint
