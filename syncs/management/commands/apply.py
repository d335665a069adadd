from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from cohortsync_site.json_values import JSONValueError, json_loads
from syncs.config_as_code import config_apply


class Command(BaseCommand):
    help = (
        "Create or update destinations, cohorts and syncs from a JSON document (matched by "
        "name). All or nothing: on any error nothing is written and every error is listed. "
        "Secrets may be given as {\"env\": \"VARIABLE\"}. See README.md, 'Config as code'."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("path", help="The JSON document, or - to read it from stdin.")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Validate and show what would change without writing anything.",
        )

    def handle(self, *args, path: str, dry_run: bool, **options) -> None:  # type: ignore[no-untyped-def]
        document = _read_document(path)
        report = config_apply(document=document, environ=os.environ, dry_run=dry_run)
        if not report.ok:
            for line in report.lines():
                self.stderr.write(line)
            raise CommandError("The document was not applied.", returncode=1)
        for line in report.lines():
            self.stdout.write(line)


def _read_document(path: str) -> object:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"Cannot read {path}: {exc.strerror or exc}.", returncode=1) from None
    except UnicodeDecodeError:
        raise CommandError(f"{path} is not UTF-8 text.", returncode=1) from None
    try:
        return json_loads(text)
    except JSONValueError as exc:
        raise CommandError(f"{path}: {exc}.", returncode=1) from None
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
            returncode=1,
        ) from None
