from __future__ import annotations

import argparse
import json
import sys

from django.core.management.base import BaseCommand, CommandError

from bench.fleet import DEFAULT_CYCLES, DEFAULT_MEMBERS, DEFAULT_SYNCS, DEFAULT_WORKERS
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
        parser.add_argument("--fleet", type=int, nargs="?", const=DEFAULT_SYNCS, default=None, metavar="N",
                            help=f"Run a fleet of N dynamic syncs (default {DEFAULT_SYNCS}) through the task "
                            "cluster, --profiles members per cohort (default "
                            f"{DEFAULT_MEMBERS:,}), 1%% churn per cycle.")
        parser.add_argument("--cycles", type=int, default=DEFAULT_CYCLES,
                            help=f"Fleet cycles to measure (default {DEFAULT_CYCLES}).")
        parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                            help=f"Q_WORKERS of the fleet's task cluster (default {DEFAULT_WORKERS}).")
        parser.add_argument("--shared-budget", action="store_true",
                            help="Two task clusters, two syncs to one Marketo instance: its budget shared "
                            "(--profiles members per sync, default 60,000).")
        parser.add_argument("--allow-any-database", action="store_true",
                            help="Run on a database whose name does not contain 'bench'.")
        parser.add_argument("--growth", action="store_true",
                            help="Print how each recorded figure grows from size to size (the growth "
                            "exponent) and its value at 30M by the last exponent, from the results in "
                            "docs/benchmarks.md; with --record, append that table there.")
        # Internal: one measured step, run by the bench itself in a fresh process.
        parser.add_argument("--step", help=argparse.SUPPRESS)

    def handle(self, *args, **options) -> None:  # type: ignore[no-untyped-def]
        if options["growth"]:
            # Reads docs/benchmarks.md only: no database needed.
            self._growth(options)
            return
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
        command = "python manage.py " + " ".join(sys.argv[2:] and ["bench", *sys.argv[2:]] or ["bench"])
        if options["fleet"] is not None:
            self._fleet(options, command)
            return
        if options["shared_budget"]:
            from bench.report import DOC
            from bench.shared_budget import DEFAULT_MEMBERS, shared_budget_run
            from bench.shared_budget import record as shared_record
            from bench.shared_budget import summary_text as shared_summary

            result = shared_budget_run(members=options["profiles"] or DEFAULT_MEMBERS, command=command,
                                       out=self.stdout.write)
            self.stdout.write(shared_summary(result))
            if options["record"]:
                self.stdout.write(f"Recorded in {shared_record(result, doc=DOC)}.")
            return
        profiles = LARGE_PROFILES if options["large"] else (options["profiles"] or DEFAULT_PROFILES)
        if profiles < 100:
            raise CommandError("Use at least 100 profiles (--profiles N).")
        from bench.report import record, summary_text

        result = suite_run(
            profiles=profiles,
            path_names=options["paths"],
            command=command,
            skip_import=options["skip_import"],
            admin_pages=not options["no_admin"],
            out=self.stdout.write,
        )
        self.stdout.write(summary_text(result))
        if options["record"]:
            self.stdout.write(f"Recorded in {record(result)}.")

    def _fleet(self, options: dict, command: str) -> None:  # type: ignore[type-arg]
        from bench.fleet import fleet_run, record, summary_text
        from bench.report import DOC

        members = options["profiles"] or DEFAULT_MEMBERS
        if options["fleet"] < 1 or members < 100 or options["cycles"] < 1 or options["workers"] < 1:
            raise CommandError("Use --fleet N ≥ 1, --profiles ≥ 100, --cycles ≥ 1 and --workers ≥ 1.")
        result = fleet_run(syncs=options["fleet"], members=members, cycles=options["cycles"],
                           workers=options["workers"], command=command, out=self.stdout.write)
        self.stdout.write(summary_text(result))
        if options["record"]:
            self.stdout.write(f"Recorded in {record(result, doc=DOC)}.")

    def _growth(self, options: dict) -> None:  # type: ignore[type-arg]
        from bench.growth import growth_block, growth_rows, growth_table, records_parse
        from bench.report import DOC, results_append

        paths = options["paths"] if options["paths"] != list(PATH_NAMES) else None
        rows = growth_rows(records_parse(DOC.read_text(encoding="utf-8")), paths=paths)
        if not rows:
            raise CommandError(f"No figure is recorded at two sizes in {DOC}: run the bench with --record first.")
        self.stdout.write(growth_table(rows))
        if options["record"]:
            self.stdout.write(f"Recorded in {results_append(growth_block(rows), doc=DOC)}.")
