from __future__ import annotations

from cryptography.fernet import Fernet
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Print a new key for FIELD_ENCRYPTION_KEYS. To rotate, put it first in the list, keep "
        "the old keys after it, then run `manage.py rotate_encryption_keys`."
    )

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        # stdout carries only the key so it can be captured by scripts.
        self.stdout.write(Fernet.generate_key().decode())
        self.stderr.write(
            "Put this key first in FIELD_ENCRYPTION_KEYS (comma-separated), keep the old keys "
            "after it, then run `python manage.py rotate_encryption_keys`."
        )
