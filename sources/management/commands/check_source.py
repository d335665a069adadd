from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sources.models import Source
from sources.services import source_check_connection

EXIT_NOT_CONNECTED = 1
EXIT_UNKNOWN_SOURCE = 2


class Command(BaseCommand):
    help = (
        "Connect to a source read-only and run a trivial query (the same as Test connection "
        "in the admin). Exits 0 when it answers, 1 when not, 2 for an unknown source name."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The source's name, as shown in the admin.")

    def handle(self, *args, name: str, **options) -> None:  # type: ignore[no-untyped-def]
        # Deferred: a password no key can decrypt is reported by the check, not raised here.
        source = Source.objects.defer("password").filter(name=name).first()
        if source is None:
            known = ", ".join(Source.objects.values_list("name", flat=True)[:20]) or "none yet"
            raise CommandError(
                f"No source is named '{name}'. Known sources: {known}.",
                returncode=EXIT_UNKNOWN_SOURCE,
            )
        check = source_check_connection(source=source)
        if not check.ok:
            raise CommandError(f"Not connected: {check.summary}", returncode=EXIT_NOT_CONNECTED)
        self.stdout.write(self.style.SUCCESS(f"Connected: {check.summary}"))
