"""Import profiles from a CSV or JSON Lines file: `manage.py import_profiles PATH`."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cohorts.importing import (
    DEFAULT_BATCH_SIZE,
    FORMATS,
    ImportFileError,
    ImportReport,
    profiles_import,
)
from cohortsync_site.text import count_of

SHOWN_REJECTS = 20


class Command(BaseCommand):
    help = (
        "Create or update profiles from a CSV file (header row with a distinct_id column, "
        "other columns are properties) or a JSON Lines file ({\"distinct_id\": ..., "
        "\"properties\": {...}} per line). Properties are merged into existing profiles."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="File to import.")
        parser.add_argument(
            "--format",
            choices=FORMATS,
            default=None,
            help="File format; inferred from the file name or first line when omitted.",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH_SIZE,
            help=f"Rows written per transaction (default {DEFAULT_BATCH_SIZE}).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        started = time.monotonic()

        def progress(report: ImportReport) -> None:
            self.stderr.write(
                f"{count_of(report.rows_read, 'row')} read ({report.created:,} created, "
                f"{report.updated:,} updated, {report.rejected:,} rejected, "
                f"{time.monotonic() - started:.0f}s)"
            )

        try:
            report = profiles_import(
                source=options["path"],
                file_format=options["format"],
                batch_size=options["batch_size"],
                on_progress=progress,
            )
        except ImportFileError as exc:
            raise CommandError(str(exc)) from None

        self.stdout.write(f"{report.summary()} ({report.file_format}, {time.monotonic() - started:.1f}s)")
        if report.rejects:
            self.stdout.write(f"First rejected rows ({min(len(report.rejects), SHOWN_REJECTS)} of {report.rejected:,}):")
            for rejected in report.rejects[:SHOWN_REJECTS]:
                self.stdout.write(f"  line {rejected.line}: {rejected.reason}")
        if report.rows_read == 0:
            raise CommandError(f"{options['path']} contains no profiles.")
        if report.rows_accepted == 0:
            raise CommandError("Every row was rejected; nothing was imported.")
