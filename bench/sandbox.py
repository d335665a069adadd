"""The emulators in their own process (`manage.py run_sandbox`), so their CPU is not
counted as ours, configured over their HTTP control endpoints."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

MANAGE = Path(__file__).resolve().parent.parent / "manage.py"
HOST = "127.0.0.1"


class SandboxProcessError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class SandboxProcess:
    """`run_sandbox` on a free loopback port; use as a context manager."""

    def __init__(
        self, *, env: dict[str, str] | None = None, port: int | None = None, log_path: Path | None = None
    ) -> None:
        self.port = port or _free_port()
        self.log_path = log_path
        self.url = f"http://{HOST}:{self.port}"
        self._env = env
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = subprocess.DEVNULL
        self._session = requests.Session()

    def __enter__(self) -> SandboxProcess:
        # The server logs every request: into a file, never into a pipe nobody reads.
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(
            [sys.executable, str(MANAGE), "run_sandbox", "--host", HOST, "--port", str(self.port)],
            env=self._env or dict(os.environ),
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                where = f"; see {self.log_path}" if self.log_path else ""
                raise SandboxProcessError(f"run_sandbox exited at start{where}.")
            try:
                self._session.get(f"{self.url}/", timeout=1)
                return self
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stop()
        raise SandboxProcessError(f"run_sandbox did not answer on {self.url} within 30 s.")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._log is not subprocess.DEVNULL:
            self._log.close()
            self._log = subprocess.DEVNULL

    @property
    def sfmc_auth_base_url(self) -> str:
        return f"{self.url}/sfmc/auth"

    @property
    def marketo_base_url(self) -> str:
        return f"{self.url}/marketo"

    def reset(self, prefix: str) -> None:
        self._post(f"/{prefix}/_sandbox/reset", {})

    def configure(self, prefix: str, config: dict[str, Any]) -> None:
        self._post(f"/{prefix}/_sandbox/config", config)

    def calls(self, prefix: str) -> dict[str, Any]:
        response = self._session.get(f"{self.url}/{prefix}/_sandbox/state", params={"limit": 0}, timeout=120)
        response.raise_for_status()
        return dict(response.json().get("calls") or {})

    def cpu_seconds(self) -> float:
        """User + system CPU the emulator process has used so far (Linux /proc)."""
        if self._process is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def _post(self, path: str, body: dict[str, Any]) -> None:
        response = self._session.post(f"{self.url}{path}", json=body, timeout=60)
        if response.status_code != 200:
            raise SandboxProcessError(f"POST {path} answered {response.status_code}: {response.text[:500]}")
