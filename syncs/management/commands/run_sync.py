"""Export or sync one cohort from the command line (cron, CI, the demo script)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from syncs.errors import SyncRunConflict
from syncs.models import RunStatus, Sync, SyncRun
from syncs.selectors import CallForecast, run_call_forecast, run_outcome_counts
from syncs.services import sync_run_create, sync_run_execute, sync_run_request

# Exit codes: a promise to scripts, documented in --help.
EXIT_CODES: dict[str, int] = {
    RunStatus.SUCCEEDED: 0,
    RunStatus.PARTIAL: 1,
    RunStatus.FAILED: 2,
    RunStatus.QUEUED: 3,
    RunStatus.RUNNING: 3,
    RunStatus.AWAITING_APPROVAL: 4,
    RunStatus.CANCELLED: 5,
    RunStatus.SKIPPED: 6,
}
EXIT_CONFLICT = 6
EXIT_UNKNOWN_SYNC = 64
CONFLICT_STATUS = "conflict"


def run_summary(run: SyncRun, forecast: CallForecast | None) -> dict[str, Any]:
    """The --json object: users acknowledged as true (added) / false (removed), failed,
    skipped (missing or invalid identity), plus the plan and run facts.

    `projected_api_calls`: for a dry run (or a run awaiting approval), the API calls sending
    its plan would take, {"min": n, "max": n or null (no upper bound known)}; else null.
    `daily_quota_left`, `quota_resets_at`: with it, for a destination account with a daily
    quota (Marketo), the calls left today and when the quota resets (ISO 8601, UTC);
    `forecast` is run_call_forecast(run)."""
    return {
        "run_id": run.pk,
        "sync": run.sync.name,
        "status": run.status,
        "dry_run": run.is_dry_run,
        "full_resync": run.is_full_resync,
        **run_outcome_counts(run),
        "planned_adds": run.planned_adds,
        "planned_removes": run.planned_removes,
        "api_calls": run.api_calls,
        "projected_api_calls": forecast.calls.as_json() if forecast is not None else None,
        "daily_quota_left": forecast.daily_quota_left if forecast is not None else None,
        "quota_resets_at": (
            forecast.quota_resets_at.isoformat() if forecast is not None and forecast.quota_resets_at else None
        ),
        "duration_seconds": run.duration_seconds,
        "error_code": run.error_code or None,
        "error": run.error_message or None,
    }


class Command(BaseCommand):
    help = (
        "Run the sync called NAME: enqueue it for the task cluster (default) or run it in this "
        "process (--inline). Exit codes: 0 succeeded, 1 partial (some users failed), 2 failed, "
        "3 queued or still running (not --inline), 4 awaiting approval (mass-removal guard), "
        "5 cancelled, 6 not started because another run is queued, running or awaiting "
        "approval, 64 unknown sync."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The sync's name, as shown in the admin.")
        parser.add_argument("--inline", action="store_true", help="Run in this process and wait for the result.")
        parser.add_argument("--dry-run", action="store_true", help="Plan only: store counts and a sample, send nothing.")
        parser.add_argument("--full", action="store_true", help="Full resync: re-send every current member.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object with the outcome.")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"]
        sync = Sync.objects.select_related("destination", "cohort").filter(name=name).first()
        if sync is None:
            raise CommandError(
                f"No sync is called '{name}'. Names are listed in the admin under Syncs.",
                returncode=EXIT_UNKNOWN_SYNC,
            )
        request = sync_run_create if options["inline"] else sync_run_request
        try:
            run = request(
                sync=sync,
                trigger=SyncRun.Trigger.CLI,
                dry_run=options["dry_run"],
                full_resync=options["full"],
            )
        except SyncRunConflict as conflict:
            self._conflict(sync, conflict, as_json=options["json"])
            raise SystemExit(EXIT_CONFLICT) from None
        if options["inline"]:
            run = sync_run_execute(run_id=run.pk)
        else:
            run.refresh_from_db()
        forecast = run_call_forecast(run)
        summary = run_summary(run, forecast)
        if options["json"]:
            self.stdout.write(json.dumps(summary))
        else:
            self._human(summary, inline=options["inline"])
            self._forecast(forecast)
        code = EXIT_CODES.get(run.status, 2)
        if code:
            raise SystemExit(code)

    def _conflict(self, sync: Sync, conflict: SyncRunConflict, *, as_json: bool) -> None:
        if as_json:
            active = conflict.active_run
            self.stdout.write(
                json.dumps(
                    {
                        "run_id": active.pk if active else None,
                        "sync": sync.name,
                        "status": CONFLICT_STATUS,
                        "added": 0,
                        "removed": 0,
                        "failed": 0,
                        "skipped": 0,
                        "api_calls": 0,
                        "duration_seconds": None,
                        "error_code": "previous_run_active",
                        "error": conflict.message,
                    }
                )
            )
        else:
            self.stderr.write(conflict.message)

    def _human(self, summary: dict[str, Any], *, inline: bool) -> None:
        kind = "Dry run" if summary["dry_run"] else "Run"
        self.stdout.write(f"{kind} #{summary['run_id']} of {summary['sync']}: {summary['status']}")
        if summary["status"] in (RunStatus.QUEUED, RunStatus.RUNNING) and not inline:
            self.stdout.write("The task cluster runs it; follow it in the admin under Sync runs.")
            return
        self.stdout.write(
            f"  planned: +{summary['planned_adds']} / -{summary['planned_removes']}; "
            f"acknowledged: +{summary['added']} / -{summary['removed']}; "
            f"failed: {summary['failed']}; skipped: {summary['skipped']}; "
            f"API calls: {summary['api_calls']}"
        )
        if summary["error"]:
            self.stdout.write(f"  {summary['error']}")

    def _forecast(self, forecast: CallForecast | None) -> None:
        if forecast is None:
            return
        self.stdout.write(f"  sending this plan would take {forecast.calls.text()}: {forecast.calls.detail()}")
        if forecast.daily_quota_left is not None and forecast.quota_resets_at is not None:
            self.stdout.write(
                f"  the account has {forecast.daily_quota_left:,} of its {forecast.daily_quota:,} calls left "
                f"today; the quota resets at {forecast.quota_resets_at:%Y-%m-%d %H:%M} UTC"
            )
