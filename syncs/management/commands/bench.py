from __future__ import annotations

import argparse
import json
import sys

from django.core.management.base import BaseCommand, CommandError

from bench.paths import PATH_NAMES
from bench.suite import (
    DEFAULT_PROFILES,
    LARGE_PROFILES,
    RESULT_MARK,
    BenchRefused,
    database_check,
    suite_run,
)


class Command(BaseCommand):
    help = (
        "Measure CohortSync at scale on PostgreSQL against the sandbox emulators: profile "
        "import, first export, a 1% churn sync and a sync with nothing changed, per "
        "destination path, plus the admin pages. See docs/benchmarks.md."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        size = parser.add_mutually_exclusive_group()
        size.add_argument("--profiles", type=int, default=None,
                          help=f"Number of synthetic profiles (default {DEFAULT_PROFILES:,}).")
        size.add_argument("--large", action="store_true", help=f"{LARGE_PROFILES:,} profiles.")
        parser.add_argument("--paths", nargs="+", choices=PATH_NAMES, default=list(PATH_NAMES),
                            help="Destination paths to measure (default: all).")
        parser.add_argument("--record", action="store_true",
                            help="Append the results to docs/benchmarks.md.")
        parser.add_argument("--skip-import", action="store_true",
                            help="Seed the profiles with COPY instead of measuring import_profiles.")
        parser.add_argument("--no-admin", action="store_true", help="Skip the admin page timings.")
        parser.add_argument("--allow-any-database", action="store_true",
                            help="Run on a database whose name does not contain 'bench'.")
        # Internal: one measured step, run by the bench itself in a fresh process.
        parser.add_argument("--step", help=argparse.SUPPRESS)

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        try:
            database_check(allow_any_database=options["allow_any_database"] or bool(options["step"]))
        except BenchRefused as exc:
            raise CommandError(str(exc)) from None
        if options["step"]:
            from bench.steps import STEPS

            spec = json.loads(options["step"])
            result = STEPS[spec.pop("step")](**spec)
            self.stdout.write(RESULT_MARK + json.dumps(result))
            return
        profiles = LARGE_PROFILES if options["large"] else (options["profiles"] or DEFAULT_PROFILES)
        if profiles < 100:
            raise CommandError("Use at least 100 profiles (--profiles N).")
        from bench.report import record, summary_text

        result = suite_run(
            profiles=profiles,
            path_names=options["paths"],
            command="python manage.py " + " ".join(sys.argv[2:] and ["bench", *sys.argv[2:]] or ["bench"]),
            skip_import=options["skip_import"],
            admin_pages=not options["no_admin"],
            out=self.stdout.write,
        )
        self.stdout.write(summary_text(result))
        if options["record"]:
            self.stdout.write(f"Recorded in {record(result)}.")
