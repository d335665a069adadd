"""The webhook payload (json and slack formats) and the email: what scripts depend on."""

from __future__ import annotations

import pytest

from alerts.models import AlertRule
from destinations.errors import AuthenticationError
from syncs.models import RunStatus
from tests.alerts.commands import run_sync_json
from tests.alerts.listener import WebhookListener
from tests.factories import AlertRuleFactory, CohortFactory, DestinationFactory, SyncFactory
from tests.syncs.fakes import FakeConnector, Rejection, pro_profile

pytestmark = pytest.mark.django_db

PAYLOAD_KEYS = {"event", "sync", "destination", "cohort", "run_id", "status", "trigger", "counts",
                "error_code", "message", "url"}


@pytest.mark.parametrize("outcome", [RunStatus.PARTIAL, RunStatus.FAILED])
def test_payload_fields_equal_what_run_sync_json_prints(
    outcome: str, fake: FakeConnector, webhook: WebhookListener, webhook_rule, django_capture_on_commit_callbacks
) -> None:
    for email in ("ana@example.com", "bob@example.com", "bad@example.com"):
        pro_profile(email)
    pro_profile(None)
    fake.reject["bad@example.com"] = Rejection(code="1003")
    if outcome == RunStatus.FAILED:
        fake.validation_error = AuthenticationError("SFMC refused the client id and secret.", code="401")
    sync = SyncFactory(name="Pro → SFMC", cohort=CohortFactory(name="Pro users"),
                       destination=DestinationFactory(name="SFMC prod"))

    _, summary = run_sync_json(sync.name, django_capture_on_commit_callbacks)

    (request,) = webhook.received
    assert request.headers["Content-Type"] == "application/json"
    payload = request.json
    assert set(payload) == PAYLOAD_KEYS
    assert payload["event"] == outcome
    assert (payload["sync"], payload["cohort"], payload["destination"]) == ("Pro → SFMC", "Pro users", "SFMC prod")
    assert (payload["run_id"], payload["status"]) == (summary["run_id"], summary["status"])
    assert payload["counts"] == {key: summary[key] for key in ("added", "removed", "failed", "skipped")}
    assert payload["trigger"] == "cli"
    assert payload["error_code"] == summary["error_code"] and payload["error_code"]
    assert payload["url"] == f"https://cohortsync.example.com/admin/syncs/syncrun/{summary['run_id']}/change/"
    assert summary["error"] in payload["message"]


def test_slack_format_has_text_blocks_and_the_link(fake: FakeConnector, webhook: WebhookListener,
                                                   alerting_run) -> None:
    AlertRuleFactory(webhook_url=webhook.url, webhook_format=AlertRule.WebhookFormat.SLACK)
    fake.validation_error = AuthenticationError("Bad <credentials> & more.")
    pro_profile("ana@example.com")
    run = alerting_run(SyncFactory(name="Pro → Marketo"))

    body = webhook.received[0].json
    assert body["text"].startswith("Sync failed: Sync “Pro → Marketo” failed")
    section = body["blocks"][0]["text"]
    assert section["type"] == "mrkdwn" and "Bad &lt;credentials&gt; &amp; more." in section["text"]
    link = body["blocks"][-1]["text"]["text"]
    assert link == f"<https://cohortsync.example.com/admin/syncs/syncrun/{run.pk}/change/|Open the run>"


def test_email_says_what_happened_with_the_counts_and_link(fake: FakeConnector, alerting_run, mailoutbox,
                                                           settings) -> None:
    settings.DEFAULT_FROM_EMAIL = "CohortSync <alerts@example.com>"
    AlertRuleFactory(email=True, email_to=["ops@example.com"])
    pro_profile("ana@example.com")
    pro_profile("bad@example.com")
    fake.reject["bad@example.com"] = Rejection(code="1003")
    run = alerting_run(SyncFactory(name="Pro → SFMC"))

    (email,) = mailoutbox
    assert email.from_email == "CohortSync <alerts@example.com>"
    # The subject is the message, shortened to one line.
    assert email.subject.startswith(f"[CohortSync] Sync “Pro → SFMC” partially failed (run #{run.pk}): 1 of 2 users failed")
    assert email.subject.endswith("…") and len(email.subject) <= 13 + 150 and "\n" not in email.subject
    assert run.error_message in email.body
    assert "Users: added 1, removed 0, failed 1, skipped 0" in email.body
    assert f"/admin/syncs/syncrun/{run.pk}/change/" in email.body
