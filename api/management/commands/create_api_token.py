from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from api.services import api_token_create


class Command(BaseCommand):
    help = (
        "Create a bearer token for the profile ingestion API (POST /api/v1/profiles) and "
        "print it once: only a hash is stored. Revoke it in the admin."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Who uses the token, e.g. 'Web app (production)'.")

    def handle(self, *args, name: str, **options) -> None:  # type: ignore[no-untyped-def]
        try:
            created = api_token_create(name=name)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(created.plaintext)
        self.stderr.write(
            f"Token '{created.token.name}' created. Store it now: it is not shown again."
        )
