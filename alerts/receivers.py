"""Alerts listen to runs stopping (syncs.run_events): one hook, wherever the status was set."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from alerts.services import alerts_for_run_deliver
from syncs.run_events import run_finished


@receiver(run_finished, dispatch_uid="alerts.run_finished")
def _run_finished(sender: Any, run_id: int, **kwargs: Any) -> None:
    alerts_for_run_deliver(run_id=run_id)
