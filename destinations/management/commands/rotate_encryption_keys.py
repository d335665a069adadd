from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from destinations.services import destination_secrets_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored destination secret with the first key of "
        "FIELD_ENCRYPTION_KEYS. Run it after putting a new key first; remove an old key only "
        "once this has succeeded. Safe to run again."
    )

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        report = destination_secrets_rotate()
        self.stdout.write(
            f"Re-encrypted {report.reencrypted} secret(s) with the current key; "
            f"{report.already_current} already used it; {report.empty} destination(s) have no "
            "secret."
        )
        if report.changed_meanwhile:
            self.stdout.write(
                f"{report.changed_meanwhile} secret(s) were re-entered while rotating and "
                "already use the current key."
            )
        if report.undecryptable:
            names = ", ".join(f"'{name}'" for name in report.undecryptable)
            raise CommandError(
                f"No key in FIELD_ENCRYPTION_KEYS can decrypt the secret of {names}. Add back "
                "the key it was encrypted with and run this again, or enter the secret anew in "
                "the admin. Keep the old keys until this command succeeds.",
                returncode=1,
            )
