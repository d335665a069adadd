"""django-q2 tasks of the alerts: no arguments (never a URL), small results, safe to repeat."""

from __future__ import annotations

from typing import Any

from alerts.delivery import deliveries_prune, deliveries_retry_due
from alerts.services import alerts_stale_check_and_send


def check_stale_syncs() -> dict[str, Any]:
    return alerts_stale_check_and_send()


def retry_alert_deliveries() -> dict[str, Any]:
    return {**deliveries_retry_due(), "pruned": deliveries_prune()}
