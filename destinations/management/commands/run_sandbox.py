from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from destinations.sandbox.server import SandboxServer


class Command(BaseCommand):
    help = (
        "Serve the SFMC and Marketo sandbox emulators (for the demo, tests and benchmarks). "
        "Never needed in production."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--host", default=settings.COHORTSYNC_SANDBOX_HOST)
        parser.add_argument("--port", type=int, default=settings.COHORTSYNC_SANDBOX_PORT)

    def handle(self, *args, host: str, port: int, **options) -> None:  # type: ignore[no-untyped-def]
        server = SandboxServer(host=host, port=port)
        self.stdout.write(
            f"Sandbox emulators on {server.url}\n"
            f"  SFMC auth base URL: {server.sfmc_auth_base_url}\n"
            f"  Marketo base URL:   {server.marketo_base_url}\n"
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
