"""Run one profile import now, in this process (cron, CI, scripts)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sources.imports import mark_shown
from sources.models import ImportRun, ImportRunStatus, ProfileImport
from sources.services import ImportRunConflict, import_run_create, import_run_process

EXIT_FAILED = 1
EXIT_CONFLICT = 3
EXIT_UNKNOWN_IMPORT = 64


def import_run_summary(run: ImportRun) -> dict[str, Any]:
    """The --json object: a promise to scripts (extend it, never rename)."""
    return {
        "run_id": run.pk,
        "import": run.profile_import.name,
        "status": run.status,
        "full": run.is_full,
        "rows_read": run.rows_read,
        "created": run.created,
        "updated": run.updated,
        "unchanged": run.unchanged,
        "deleted": run.deleted,
        "rejected": run.rejected,
        "rejects": run.rejects[:20],
        "high_water_mark": mark_shown(run.high_water_mark),
        "duration_seconds": run.duration_seconds,
        "error_code": run.error_code or None,
        "error": run.error_message or None,
    }


class Command(BaseCommand):
    help = (
        "Run the profile import called NAME now, in this process. --full ignores the "
        "high-water mark (and, with delete_missing, deletes profiles the query no longer "
        "returns). Exit codes: 0 succeeded, 1 failed, 3 another run of it is active, 64 "
        "unknown import."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The import's name, as shown in the admin.")
        parser.add_argument("--full", action="store_true", help="Read every row, ignoring the high-water mark.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object with the outcome.")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"]
        profile_import = ProfileImport.objects.filter(name=name).first()
        if profile_import is None:
            known = ", ".join(ProfileImport.objects.values_list("name", flat=True)[:20]) or "none yet"
            raise CommandError(
                f"No profile import is called '{name}'. Known imports: {known}.",
                returncode=EXIT_UNKNOWN_IMPORT,
            )
        try:
            run = import_run_create(
                profile_import=profile_import, trigger=ImportRun.Trigger.CLI, full=options["full"]
            )
        except ImportRunConflict as conflict:
            if options["json"]:
                self.stdout.write(json.dumps({"import": name, "status": "conflict", "error": conflict.message}))
            else:
                self.stderr.write(conflict.message)
            raise SystemExit(EXIT_CONFLICT) from None
        run = import_run_process(run_id=run.pk)
        summary = import_run_summary(run)
        if options["json"]:
            self.stdout.write(json.dumps(summary, default=str))
        else:
            self._human(summary)
        if run.status != ImportRunStatus.SUCCEEDED:
            raise SystemExit(EXIT_FAILED)

    def _human(self, summary: dict[str, Any]) -> None:
        self.stdout.write(f"Import run #{summary['run_id']} of {summary['import']}: {summary['status']}")
        self.stdout.write(
            f"  {summary['rows_read']:,} rows read: {summary['created']:,} created, "
            f"{summary['updated']:,} updated, {summary['unchanged']:,} unchanged, "
            f"{summary['deleted']:,} deleted, {summary['rejected']:,} rejected"
        )
        for reject in summary["rejects"]:
            self.stdout.write(f"  row {reject['row']}: {reject['reason']}")
        if summary["high_water_mark"] is not None:
            self.stdout.write(f"  high-water mark: {summary['high_water_mark']}")
        if summary["error"]:
            self.stdout.write(f"  {summary['error']}")
