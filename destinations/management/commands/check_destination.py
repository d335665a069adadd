from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from destinations.models import Destination
from destinations.services import destination_check_connection

EXIT_NOT_CONNECTED = 1
EXIT_UNKNOWN_DESTINATION = 2


class Command(BaseCommand):
    help = (
        "Log in to a destination with its saved settings and list the fields syncs can write "
        "to. Exits 0 when connected, 1 when not, 2 for an unknown destination name."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The destination's name, as shown in the admin.")

    def handle(self, *args, name: str, **options) -> None:  # type: ignore[no-untyped-def]
        # The secret is deferred so an undecryptable one is reported by the check, not
        # raised while loading the row.
        destination = Destination.objects.defer("client_secret").filter(name=name).first()
        if destination is None:
            known = ", ".join(Destination.objects.values_list("name", flat=True)[:20]) or "none yet"
            raise CommandError(
                f"No destination is named '{name}'. Known destinations: {known}.",
                returncode=EXIT_UNKNOWN_DESTINATION,
            )
        report = destination_check_connection(destination=destination)
        if not report.ok:
            raise CommandError(f"Not connected: {report.summary}", returncode=EXIT_NOT_CONNECTED)
        self.stdout.write(self.style.SUCCESS(f"Connected: {report.summary}"))
        if report.fields:
            self.stdout.write(f"{len(report.fields)} field(s):")
            for field in report.fields:
                usable = "usable as a sync target" if field.is_target_compatible else "not a sync target"
                label = f" ({field.label})" if field.label and field.label != field.name else ""
                self.stdout.write(f"  {field.name}{label}: {field.type}, {usable}")
        else:
            self.stdout.write("No fields reported.")
