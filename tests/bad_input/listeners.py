"""Loopback servers for the URL and redirect corpora: one that must receive nothing (or
answers in raw bytes no HTTP server would send), and one that answers scripted responses (a
redirect, a token) over real HTTP."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Send = Callable[[bytes], None]


class Listener:
    """A plain TCP listener on 127.0.0.1 that records every connection and what it received.

    Hostile URLs point at it: a test passes only if it received nothing at all. With
    `answer`, each connection is then answered by `answer(send)`, in raw bytes (a byte at a
    time, a body without end); `send` raises OSError once the listener is closing.
    """

    def __init__(self, answer: Callable[[Send], None] | None = None) -> None:
        self._answer = answer
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self._socket.settimeout(0.05)
        self.port: int = self._socket.getsockname()[1]
        self.received: list[bytes] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"listener-{self.port}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.received.append(b"")
                index = len(self.received) - 1
            connection.settimeout(0.5)
            try:
                data = connection.recv(65536)
                with self._lock:
                    self.received[index] = data
                if self._answer is not None:
                    self._answer(lambda chunk, to=connection: self._send(to, chunk))
            except OSError:
                pass  # nothing received, or the client gave up on the answer
            finally:
                connection.close()

    def _send(self, connection: socket.socket, chunk: bytes) -> None:
        if self._stopping.is_set():
            raise OSError("the listener is closing")
        connection.sendall(chunk)

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self.received)

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=2)
        self._socket.close()


@dataclass
class Scripted:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class ScriptedHttpServer:
    """An HTTP server on 127.0.0.1 answering each (method, path) with a scripted response;
    404 for anything else. Records the requests it received."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Scripted] = {}
        self.requests: list[tuple[str, str, bytes]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                server.requests.append((self.command, path, body))
                scripted = server.routes.get((self.command, path)) or Scripted(404, body=b"no route")
                self.send_response(scripted.status)
                for name, value in scripted.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(scripted.body)))
                self.end_headers()
                self.wfile.write(scripted.body)

            do_GET = do_POST = do_PUT = do_PATCH = _answer

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)
        self._thread.start()

    def script(self, method: str, path: str, status: int, *, headers: dict[str, str] | None = None,
               body: bytes = b"") -> None:
        self.routes[(method, path)] = Scripted(status, headers or {}, body)

    def paths(self) -> list[str]:
        return [path for _, path, _ in self.requests]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
