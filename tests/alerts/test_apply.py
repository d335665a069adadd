"""The `alerts` section of `apply`: created, updated, idempotent; errors name entry and field."""

from __future__ import annotations

import pytest
from django.db import connection

from alerts.models import AlertRule
from syncs.config_as_code import config_apply
from tests.factories import DestinationFactory, SyncFactory

pytestmark = pytest.mark.django_db

URL = "https://hooks.slack.com/services/T000/B000/apply-secret"


def _stored_url_ciphertext(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT webhook_url FROM alerts_alertrule WHERE name = %s", [name])
        return cursor.fetchone()[0]


def _document() -> dict:
    return {
        "alerts": [
            {"name": "Ops Slack", "channel": "webhook", "url": {"env": "OPS_SLACK"}, "format": "slack",
             "on": ["failed", "recovered"], "syncs": ["Pro → SFMC"], "destinations": ["Marketo"],
             "min_failed_share": 0.01, "stale_after_intervals": 4},
            {"name": "Ops email", "channel": "email", "to": ["ops@example.com"], "on": ["stale", "partial"]},
        ]
    }


def test_apply_creates_alert_rules_and_a_second_apply_changes_nothing() -> None:
    sync = SyncFactory(name="Pro → SFMC")
    marketo = DestinationFactory(marketo=True, name="Marketo")

    report = config_apply(document=_document(), environ={"OPS_SLACK": URL})

    assert report.ok, report.errors
    assert report.lines()[:2] == ['alert "Ops Slack": created', 'alert "Ops email": created']
    slack = AlertRule.objects.get(name="Ops Slack")
    assert (slack.channel, slack.webhook_format, slack.webhook_url) == ("webhook", "slack", URL)
    assert slack.events == ["failed", "recovered"]
    assert (slack.min_failed_share, slack.stale_after_intervals) == (0.01, 4)
    assert list(slack.syncs.all()) == [sync] and list(slack.destinations.all()) == [marketo]
    email = AlertRule.objects.get(name="Ops email")
    assert (email.email_to, email.events, email.webhook_url) == (["ops@example.com"], ["partial", "stale"], "")
    assert email.syncs.count() == 0 and email.destinations.count() == 0  # all syncs
    ciphertext = _stored_url_ciphertext("Ops Slack")
    assert ciphertext.startswith("fernet:") and "apply-secret" not in ciphertext

    again = config_apply(document=_document(), environ={"OPS_SLACK": URL})

    assert [c.action for c in again.changes] == ["unchanged", "unchanged"]
    assert _stored_url_ciphertext("Ops Slack") == ciphertext  # not re-encrypted


def test_apply_updates_only_what_changed_and_keeps_the_url_when_left_out() -> None:
    SyncFactory(name="Pro → SFMC")
    DestinationFactory(marketo=True, name="Marketo")
    config_apply(document=_document(), environ={"OPS_SLACK": URL})
    document = _document()
    slack = document["alerts"][0]
    del slack["url"]
    slack["format"] = "json"
    slack["syncs"] = []
    document["alerts"][1]["to"] = ["ops@example.com", "oncall@example.com"]

    report = config_apply(document=document, environ={})

    assert report.ok, report.errors
    assert report.lines()[:2] == ['alert "Ops Slack": updated (format, syncs)', 'alert "Ops email": updated (to)']
    rule = AlertRule.objects.get(name="Ops Slack")
    assert (rule.webhook_format, rule.webhook_url, rule.syncs.count()) == ("json", URL, 0)

    slack["url"] = URL.replace("apply-secret", "rotated")
    assert config_apply(document=document, environ={}).lines()[0] == 'alert "Ops Slack": updated (url)'


def test_every_error_names_the_entry_and_the_field() -> None:
    document = {
        "alerts": [
            {"name": "No channel", "on": ["failed"]},
            {"name": "Bad events", "channel": "email", "to": ["ops@example.com"], "on": ["failed", "exploded"]},
            {"name": "No URL", "channel": "webhook", "on": ["failed"]},
            {"name": "Bad refs", "channel": "email", "to": ["not-an-address"], "on": ["stale"],
             "syncs": ["Nope"], "destinations": ["Nowhere"], "min_failed_share": 5, "stale_after_intervals": 0},
            {"name": "Mixed", "channel": "webhook", "url": URL, "to": ["ops@example.com"], "on": ["failed"],
             "format": "teams", "color": "red"},
            {"name": "Unset env", "channel": "webhook", "url": {"env": "MISSING_VAR"}, "on": ["failed"]},
        ]
    }

    report = config_apply(document=document, environ={})

    assert report.errors == [
        'alerts[0] "No channel": channel: must be one of webhook, email (missing).',
        'alerts[1] "Bad events": on: unknown event \'exploded\'; events are failed, partial, awaiting_approval, stale, recovered.',
        'alerts[2] "No URL": url: is required for a webhook alert; use {"env": "VARIABLE_NAME"} to keep it out of the file.',
        'alerts[3] "Bad refs": min_failed_share: must be a number from 0 to 1 (e.g. 0.01 for 1 %), not 5.',
        'alerts[3] "Bad refs": stale_after_intervals: must be a whole number from 1 to 1000, not 0.',
        'alerts[3] "Bad refs": to: “not-an-address” is not an email address.',
        'alerts[3] "Bad refs": syncs: no sync named "Nope" in this document or the database.',
        'alerts[3] "Bad refs": destinations: no destination named "Nowhere" in this document or the database.',
        'alerts[4] "Mixed": to: does not apply to webhook alerts; remove it.',
        'alerts[4] "Mixed": color: unknown key. A webhook alert takes: name, channel, on, syncs, destinations, '
        "min_failed_share, stale_after_intervals, enabled, url, format.",
        "alerts[4] \"Mixed\": format: must be one of json, slack, not 'teams'.",
        'alerts[5] "Unset env": url: environment variable MISSING_VAR is not set (or empty). Set it before running apply.',
    ]
    assert AlertRule.objects.count() == 0


def test_alerts_may_name_syncs_and_destinations_of_the_same_document(sandbox) -> None:
    base = sandbox.url.rstrip("/")
    document = {
        "destinations": [{"name": "Marketo", "kind": "marketo", "base_url": f"{base}/marketo",
                          "client_id": "id", "client_secret": "secret"}],
        "cohorts": [{"name": "VIP", "members": ["u1"]}],
        "syncs": [{"name": "VIP → Marketo", "cohort": "VIP", "destination": "Marketo", "field": "vip"}],
        "alerts": [{"name": "Ops", "channel": "email", "to": ["ops@example.com"], "on": ["failed"],
                    "syncs": ["VIP → Marketo"], "destinations": ["Marketo"]}],
    }

    report = config_apply(document=document, environ={})

    assert report.ok, report.errors
    rule = AlertRule.objects.get(name="Ops")
    assert [s.name for s in rule.syncs.all()] == ["VIP → Marketo"]
    assert [d.name for d in rule.destinations.all()] == ["Marketo"]


def test_a_dry_run_writes_no_alert_rule() -> None:
    report = config_apply(document=_document() | {"alerts": _document()["alerts"][1:]}, environ={}, dry_run=True)
    assert report.ok and report.lines()[0] == 'alert "Ops email": would be created'
    assert AlertRule.objects.count() == 0
