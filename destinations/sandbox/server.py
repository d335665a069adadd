"""Serve the SFMC and Marketo sandbox emulators over real HTTP.

One threaded WSGI server hosts both (werkzeug's in a thread for tests, waitress for
`run_sandbox`): SFMC under /sfmc (auth base URL
http://HOST:PORT/sfmc/auth, REST instance http://HOST:PORT/sfmc/rest/) and Marketo under
/marketo (base URL http://HOST:PORT/marketo). Production code reaches them only because
their host is listed in COHORTSYNC_ALLOWED_API_HOSTS; it never knows they are emulators.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from destinations.sandbox.marketo import MarketoSandbox
from destinations.sandbox.sfmc import SfmcSandbox

SFMC_PREFIX = "/sfmc"
MARKETO_PREFIX = "/marketo"


def _index(environ, start_response):  # type: ignore[no-untyped-def]
    request = Request(environ)
    body = (
        "CohortSync sandbox emulators\n"
        f"SFMC auth base URL:  {request.host_url.rstrip('/')}{SFMC_PREFIX}/auth\n"
        f"Marketo base URL:    {request.host_url.rstrip('/')}{MARKETO_PREFIX}\n"
    )
    return Response(body, status=404 if request.path != "/" else 200)(environ, start_response)


@dataclass
class Sandboxes:
    """The emulators plus the WSGI app that routes to them."""

    sfmc: SfmcSandbox = field(default_factory=SfmcSandbox)
    marketo: MarketoSandbox = field(default_factory=MarketoSandbox)

    def wsgi_app(self):  # type: ignore[no-untyped-def]
        return DispatcherMiddleware(_index, {SFMC_PREFIX: self.sfmc, MARKETO_PREFIX: self.marketo})

    def reset(self) -> None:
        self.sfmc.reset()
        self.marketo.reset()


# Worker threads of the standalone server: each holds a request for its whole emulated
# latency, so there must be more than the calls the emulators let run at once.
STANDALONE_THREADS = 48


def serve_standalone(host: str, port: int, sandboxes: Sandboxes | None = None) -> None:
    """Serve the emulators until interrupted, for `run_sandbox` (the demo, the bench).

    waitress rather than werkzeug's development server: it keeps connections alive, as the
    real APIs do. werkzeug's closes every connection, so each request cost both sides a new
    TCP connection (and the emulator a new thread), which at 160 requests a second made the
    emulator, not its configured limits, what a client was measured against.
    """
    from waitress import serve

    serve((sandboxes or Sandboxes()).wsgi_app(), host=host, port=port, threads=STANDALONE_THREADS,
          ident="cohortsync-sandbox", _quiet=True)


class SandboxServer:
    """Run the emulators on host:port in a background thread (port 0 picks a free port)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, sandboxes: Sandboxes | None = None) -> None:
        self.sandboxes = sandboxes or Sandboxes()
        self._server: BaseWSGIServer = make_server(
            host, port, self.sandboxes.wsgi_app(), threaded=True
        )
        self.host = host
        self.port = self._server.server_port
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def sfmc_auth_base_url(self) -> str:
        return f"{self.url}{SFMC_PREFIX}/auth"

    @property
    def marketo_base_url(self) -> str:
        return f"{self.url}{MARKETO_PREFIX}"

    def start(self) -> SandboxServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="sandbox", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
