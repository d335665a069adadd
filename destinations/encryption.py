"""Encryption at rest for destination secrets.

The column holds ciphertext, Python code sees plaintext, and `dumpdata` writes ciphertext
(encrypted with the current key), which `loaddata` decrypts once and stores encrypted again.

Keys come from settings.FIELD_ENCRYPTION_KEYS (Fernet keys): the first encrypts, all of
them decrypt, so keys can be rotated (`manage.py rotate_encryption_keys`). The keys are
independent of SECRET_KEY on purpose: rotating one must not lose the other.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.db import models
from django.db.models.lookups import Exact

CIPHERTEXT_PREFIX = "fernet:"


class SecretDecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key."""


@lru_cache(maxsize=4)
def _multi_fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty: secrets cannot be encrypted.")
    try:
        return MultiFernet([Fernet(key.strip().encode()) for key in keys])
    except ValueError as exc:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS holds an invalid key: each key must be 32 url-safe "
            "base64-encoded bytes (generate one with `python manage.py generate_encryption_key`)."
        ) from exc


def current_cipher() -> MultiFernet:
    return _multi_fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt_secret(plaintext: str) -> str:
    return CIPHERTEXT_PREFIX + current_cipher().encrypt(plaintext.encode()).decode()


def decrypt_secret(stored: str) -> str:
    if not stored.startswith(CIPHERTEXT_PREFIX):
        raise SecretDecryptionError("The stored secret is not in the encrypted format.")
    try:
        return current_cipher().decrypt(stored[len(CIPHERTEXT_PREFIX) :].encode()).decode()
    except InvalidToken:
        # Never hand back the ciphertext as if it were the secret: that would turn a key
        # problem into a baffling "bad credentials" at the destination.
        raise SecretDecryptionError(
            "A stored secret cannot be decrypted with any key in FIELD_ENCRYPTION_KEYS. "
            "Restore the key it was encrypted with (keep old keys after the new one until "
            "`manage.py rotate_encryption_keys` has run)."
        ) from None


def reencrypt_secret(stored: str) -> str:
    """Re-encrypt with the first (current) key; raises if no key can decrypt."""
    return encrypt_secret(decrypt_secret(stored))


def is_encrypted_with_current_key(stored: str) -> bool:
    """True when the first key of FIELD_ENCRYPTION_KEYS alone decrypts `stored`."""
    if not stored.startswith(CIPHERTEXT_PREFIX):
        return False
    current_cipher()  # validates the key list with a helpful message
    current = Fernet(settings.FIELD_ENCRYPTION_KEYS[0].strip().encode())
    try:
        current.decrypt(stored[len(CIPHERTEXT_PREFIX) :].encode())
    except InvalidToken:
        return False
    return True


class EmptyOnlyExact(Exact):
    """`secret=""` asks "is it unset?"; comparing against a value can never be answered.

    Ciphertexts are randomised, so `secret="abc"` would silently match nothing.
    """

    def get_prep_lookup(self):  # type: ignore[no-untyped-def]
        if self.rhs != "":
            raise FieldError(
                f"'{self.lhs.target.name}' is encrypted: it can only be compared with an empty "
                "string (to test whether it is set)."
            )
        return super().get_prep_lookup()


class EncryptedTextField(models.TextField):
    """A text column holding Fernet ciphertext; Python code only ever sees plaintext.

    Empty strings are stored as empty strings ("not set"), so a form can tell set from unset
    without decrypting.
    """

    description = "Text encrypted at rest with FIELD_ENCRYPTION_KEYS"

    def value_to_string(self, obj):  # type: ignore[no-untyped-def]
        # Serialisers (dumpdata) write the ciphertext: a dump must not carry the plaintext.
        value = self.value_from_object(obj)
        return encrypt_secret(value) if value else ""

    def to_python(self, value):  # type: ignore[no-untyped-def]
        # Deserialisers (loaddata) hand back what value_to_string wrote: decrypt it here, or
        # saving would encrypt the ciphertext a second time. A value without the prefix is
        # plaintext (a dump made before dumps were encrypted); one with it that no key
        # decrypts raises SecretDecryptionError instead of becoming the "secret".
        value = super().to_python(value)
        if isinstance(value, str) and value.startswith(CIPHERTEXT_PREFIX):
            try:
                return decrypt_secret(value)
            except SecretDecryptionError:
                raise SecretDecryptionError(
                    f"The encrypted {self.name} being loaded cannot be decrypted with any key in "
                    "FIELD_ENCRYPTION_KEYS. Add the first key of the installation it was dumped "
                    "from after the current one, load again, then run "
                    "`manage.py rotate_encryption_keys`."
                ) from None
        return value

    def get_prep_value(self, value):  # type: ignore[no-untyped-def]
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return encrypt_secret(value)

    def from_db_value(self, value, expression, connection):  # type: ignore[no-untyped-def]
        if value in (None, ""):
            return value
        return decrypt_secret(value)

    def get_lookup(self, lookup_name):  # type: ignore[no-untyped-def]
        # Filtering on a secret is meaningless (ciphertexts are randomised) and risky: a
        # prefix lookup would let anyone who can filter guess it character by character.
        if lookup_name == "exact":
            return EmptyOnlyExact
        if lookup_name == "isnull":
            return super().get_lookup(lookup_name)
        return None
