"""Running management commands in alert tests: exit code and everything they printed."""

from __future__ import annotations

import io
import json
from typing import Any

from django.core.management import call_command
from django.core.management.base import CommandError


def command_run(*args: str) -> tuple[int, str]:
    """(exit code, stdout and stderr) of `manage.py *args`."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        call_command(*args, stdout=out, stderr=err)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    except CommandError as exc:
        code = exc.returncode
        err.write(str(exc))
    return code, out.getvalue() + err.getvalue()


def run_sync_json(name: str, capture: Any = None) -> tuple[int, dict[str, Any]]:
    """`run_sync NAME --inline --json`; with `capture` (django_capture_on_commit_callbacks),
    what waits for the (never committed) test transaction runs before it returns."""
    if capture is None:
        code, out = command_run("run_sync", name, "--inline", "--json")
    else:
        with capture(execute=True):
            code, out = command_run("run_sync", name, "--inline", "--json")
    return code, json.loads(out)
