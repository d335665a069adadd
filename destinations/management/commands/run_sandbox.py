from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from destinations.sandbox.server import MARKETO_PREFIX, SFMC_PREFIX, serve_standalone


class Command(BaseCommand):
    help = (
        "Serve the SFMC and Marketo sandbox emulators (for the demo, tests and benchmarks). "
        "Never needed in production."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--host", default=settings.COHORTSYNC_SANDBOX_HOST)
        parser.add_argument("--port", type=int, default=settings.COHORTSYNC_SANDBOX_PORT)

    def handle(self, *args, host: str, port: int, **options) -> None:  # type: ignore[no-untyped-def]
        url = f"http://{host}:{port}"
        self.stdout.write(
            f"Sandbox emulators on {url}\n"
            f"  SFMC auth base URL: {url}{SFMC_PREFIX}/auth\n"
            f"  Marketo base URL:   {url}{MARKETO_PREFIX}\n"
        )
        self.stdout.flush()
        try:
            serve_standalone(host, port)
        except KeyboardInterrupt:
            pass
