"""Delete old runs and their failures, keeping each sync's last run."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sources.services import import_runs_prune
from syncs.services import sync_runs_prune


class Command(BaseCommand):
    help = (
        "Delete runs (and their per-user failures) older than the retention "
        "(COHORTSYNC_RUN_RETENTION_DAYS, default 30), and old profile import runs. Each "
        "sync's and each import's last run is always kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=None, help="Retention in days for this call.")

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["days"]
        if days is not None and days < 0:
            raise CommandError("--days must be 0 or more.")
        effective = settings.COHORTSYNC_RUN_RETENTION_DAYS if days is None else days
        deleted = sync_runs_prune(older_than_days=days)
        imports = import_runs_prune(older_than_days=days)
        self.stdout.write(
            f"Deleted {deleted} run(s) and {imports} import run(s) older than {effective} days."
        )
