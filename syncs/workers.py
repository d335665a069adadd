"""Which process runs a run, and whether that process is gone.

A run's heartbeat can only say "no sign of life for a while" (COHORTSYNC_STALE_RUN_MINUTES).
When the process that claimed a run lives in the same process namespace of the same booted
machine as the one asking, the answer can be certain and immediate: the process either still
exists (with the same start time, so not a reused pid) or it does not. Everything else
(another machine or container, a system without /proc, runs claimed before workers were
recorded) is "not known", and only the heartbeat decides.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

PROC = Path("/proc")
# Process states of /proc/<pid>/stat that mean the process has exited.
EXITED_STATES = frozenset({"Z", "X", "x"})


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _process_state_and_start(pid: int) -> tuple[str, int] | None:
    """The state letter and start time (clock ticks after boot) of `pid`, or None."""
    stat = _read(PROC / str(pid) / "stat")
    if not stat:
        return None
    # "pid (command name, which may hold spaces and parentheses) state ppid ... starttime ..."
    fields = stat.rpartition(")")[2].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def _machine() -> dict[str, str]:
    boot = _read(PROC / "sys" / "kernel" / "random" / "boot_id")
    try:
        namespace = os.readlink(PROC / "self" / "ns" / "pid")
    except OSError:
        namespace = ""
    if not (boot and namespace):
        return {}
    return {"boot": boot, "pid_namespace": namespace}


def worker_identity(*, pid: int | None = None) -> dict[str, Any]:
    """What a run records about the process claiming it; {} where it cannot be known."""
    pid = os.getpid() if pid is None else pid
    machine = _machine()
    process = _process_state_and_start(pid)
    if not machine or process is None:
        return {}
    return {"host": socket.gethostname(), "pid": pid, "started": process[1], **machine}


def worker_is_gone(worker: Any) -> bool:
    """True only when `worker` was a process here that no longer exists. False when it is
    alive, or when it ran somewhere this process cannot see (then the heartbeat decides)."""
    if not isinstance(worker, dict) or not worker:
        return False
    machine = _machine()
    if not machine or any(worker.get(key) != value for key, value in machine.items()):
        return False
    pid, started = worker.get("pid"), worker.get("started")
    if not isinstance(pid, int) or not isinstance(started, int) or pid <= 0:
        return False
    process = _process_state_and_start(pid)
    if process is None:
        return True
    state, process_started = process
    return process_started != started or state in EXITED_STATES


def worker_description(worker: Any) -> str:
    """'pid 123 on web-1' for messages, or '' when unknown."""
    if not isinstance(worker, dict) or "pid" not in worker:
        return ""
    host = worker.get("host")
    return f"pid {worker['pid']}" + (f" on {host}" if host else "")
