"""The one place a run announces that it stopped: finished, or held for approval.

Every code path that gives a run its resting status (the engine, cancelling, rejecting,
the stale-run reaper) calls `run_finished_notify` right after writing it. Other apps (the
alerts) listen to `run_finished`; a listener's failure is logged and never reaches the run.
"""

from __future__ import annotations

import logging

from django.dispatch import Signal

logger = logging.getLogger(__name__)

# Sent with `run_id` (int) and `status` (str) once a run's status was written.
run_finished = Signal()


def run_finished_notify(*, run_id: int, status: str) -> None:
    from syncs.models import SyncRun

    for _receiver, outcome in run_finished.send_robust(sender=SyncRun, run_id=run_id, status=status):
        if isinstance(outcome, Exception):
            logger.error(
                "Run %s: a listener of run_finished failed (%s); the run is not affected",
                run_id,
                type(outcome).__name__,
                exc_info=outcome,
            )
