"""What an alert says: the payload (fixed when the event happens) and its renderings for
the webhook formats and email. Names, counts and the run's address only; never a secret."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils.text import Truncator

from alerts.models import TEST_EVENT, AlertEvent, AlertRule, SyncCondition
from syncs.models import Sync, SyncRun
from syncs.selectors import run_outcome_counts

SUBJECT_CHARS = 150
NO_COUNTS = {"added": 0, "removed": 0, "failed": 0, "skipped": 0}
TITLES = {
    AlertEvent.FAILED: "Sync failed",
    AlertEvent.PARTIAL: "Sync partially failed",
    AlertEvent.AWAITING_APPROVAL: "Sync awaiting approval",
    AlertEvent.STALE: "Sync stale",
    AlertEvent.RECOVERED: "Sync recovered",
    TEST_EVENT: "Test alert",
}


def absolute_admin_url(viewname: str, object_id: int) -> str:
    return settings.COHORTSYNC_BASE_URL + reverse(viewname, args=[object_id])


def run_message(*, event: str, sync: Sync, run: SyncRun, previous: str = "") -> str:
    """The human sentence for a run's event, used as the payload's `message` and in email."""
    name = f"Sync “{sync.name}”"
    if event == AlertEvent.FAILED:
        return f"{name} failed (run #{run.pk}): {run.error_message or 'no reason was recorded.'}"
    if event == AlertEvent.PARTIAL:
        return f"{name} partially failed (run #{run.pk}): {run.error_message}"
    if event == AlertEvent.AWAITING_APPROVAL:
        return f"{name} is waiting for approval (run #{run.pk}): {run.error_message}"
    if event == AlertEvent.RECOVERED:
        was = SyncCondition(previous).label.lower() if previous in SyncCondition.values else "a problem"
        return f"{name} recovered: run #{run.pk} succeeded after the sync was {was}."
    raise ValueError(f"no run message for event {event!r}")


def stale_message(*, sync: Sync, minutes_since: int) -> str:
    return (
        f"Sync “{sync.name}” is stale: no run has finished for {_minutes_text(minutes_since)}, "
        f"although it runs every {_minutes_text(sync.effective_interval_minutes)}. The task "
        "cluster (manage.py qcluster) may have stopped, or every run is still waiting."
    )


def _minutes_text(minutes: int) -> str:
    if minutes < 120:
        return f"{minutes} minute{'' if minutes == 1 else 's'}"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} hours"


def alert_payload(*, event: str, sync: Sync, run: SyncRun | None, message: str) -> dict[str, Any]:
    """The webhook JSON payload (`format: "json"`); `run_id`, `status` and `counts` are what
    `run_sync --json` prints for that run."""
    if run is not None:
        url = absolute_admin_url("admin:syncs_syncrun_change", run.pk)
    else:
        url = absolute_admin_url("admin:syncs_sync_change", sync.pk)
    return {
        "event": event,
        "sync": sync.name,
        "destination": sync.destination.name,
        "cohort": sync.cohort.name,
        "run_id": run.pk if run else None,
        "status": run.status if run else None,
        "trigger": run.trigger if run else None,
        "counts": run_outcome_counts(run) if run else dict(NO_COUNTS),
        "error_code": (run.error_code or None) if run else None,
        "message": message,
        "url": url,
    }


def test_payload(rule: AlertRule) -> dict[str, Any]:
    return {
        "event": TEST_EVENT,
        "sync": None,
        "destination": None,
        "cohort": None,
        "run_id": None,
        "status": None,
        "trigger": None,
        "counts": dict(NO_COUNTS),
        "error_code": None,
        "message": f"Test alert from the CohortSync rule “{rule.name}”: this channel works.",
        "url": absolute_admin_url("admin:alerts_alertrule_change", rule.pk),
    }


def slack_body(payload: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message: `text` (notifications, fallbacks) and blocks."""
    title = TITLES.get(payload["event"], "CohortSync alert")
    text = f"{title}: {payload['message']}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_slack_escape(title)}*\n{_slack_escape(payload['message'])}"}},
    ]
    if payload.get("sync"):
        counts = payload["counts"]
        facts = (
            f"{payload['cohort']} → {payload['destination']} · added {counts['added']:,} · removed "
            f"{counts['removed']:,} · failed {counts['failed']:,} · skipped {counts['skipped']:,}"
        )
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _slack_escape(facts)}]})
    if payload["url"].startswith(("http://", "https://")):
        label = "Open the run" if payload.get("run_id") else "Open in CohortSync"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"<{payload['url']}|{label}>"}})
    return {"text": text, "blocks": blocks}


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def email_content(payload: dict[str, Any]) -> tuple[str, str]:
    """(subject, body): the subject is the message itself, shortened to one line."""
    message = payload["message"]
    subject = "[CohortSync] " + Truncator(" ".join(message.split())).chars(SUBJECT_CHARS)
    lines = [message, ""]
    if payload.get("sync"):
        counts = payload["counts"]
        lines += [
            f"Sync: {payload['sync']}",
            f"Cohort → destination: {payload['cohort']} → {payload['destination']}",
        ]
        if payload.get("run_id"):
            lines.append(f"Run: #{payload['run_id']} ({payload['status']}, trigger {payload['trigger']})")
            lines.append(
                f"Users: added {counts['added']:,}, removed {counts['removed']:,}, failed "
                f"{counts['failed']:,}, skipped {counts['skipped']:,}"
            )
        if payload.get("error_code"):
            lines.append(f"Error code: {payload['error_code']}")
    lines += ["", payload["url"], "", "You receive this because of a CohortSync alert rule."]
    return subject, "\n".join(lines)
