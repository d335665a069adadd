"""A webhook URL is a secret: encrypted at rest and never shown, logged, queued or printed."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django_q.tasks import async_task

from alerts.models import AlertDelivery, AlertRule
from destinations.errors import AuthenticationError
from tests.alerts.commands import command_run
from tests.alerts.listener import SECRET_PATH, WebhookListener
from tests.factories import SyncFactory
from tests.syncs.fakes import FakeConnector, pro_profile

pytestmark = pytest.mark.django_db

SECRET_TOKEN = SECRET_PATH.rsplit("/", 1)[1]


def _every_stored_text() -> str:
    """Every row of every table, read with raw SQL."""
    dumped = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            dumped.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(dumped)


def _call(*args: str) -> str:
    return command_run(*args)[1]


def test_the_webhook_url_appears_nowhere_in_plain_text(
    fake: FakeConnector, webhook: WebhookListener, admin_client, caplog, monkeypatch, tmp_path,
    django_capture_on_commit_callbacks,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OPS_WEBHOOK_URL", webhook.url)
    document = tmp_path / "alerts.json"
    document.write_text(json.dumps({"alerts": [
        {"name": "Ops", "channel": "webhook", "url": {"env": "OPS_WEBHOOK_URL"}, "on": ["failed"]},
        {"name": "Literal", "channel": "webhook", "url": webhook.url, "format": "slack", "on": ["failed"]},
    ]}))
    outputs = [_call("apply", str(document)), _call("apply", str(document), "--dry-run")]
    pro_profile("ana@example.com")
    sync = SyncFactory(name="Pro users")
    fake.validation_error = AuthenticationError("SFMC refused the client id and secret.")
    webhook.status = 500  # the delivery fails, is recorded, and retried through the queue
    with django_capture_on_commit_callbacks(execute=True):
        outputs.append(_call("run_sync", sync.name, "--inline", "--json"))
    AlertDelivery.objects.update(next_attempt_at=timezone.now() - dt.timedelta(seconds=1))
    async_task("alerts.tasks.retry_alert_deliveries", sync=True)
    rule = AlertRule.objects.get(name="Ops")
    pages = [
        admin_client.get(reverse("admin:alerts_alertrule_changelist")),
        admin_client.get(reverse("admin:alerts_alertrule_change", args=[rule.pk])),
        admin_client.get(reverse("admin:alerts_alertdelivery_changelist")),
        admin_client.get(reverse("admin:alerts_alertdelivery_change", args=[AlertDelivery.objects.first().pk])),
        admin_client.post(reverse("admin:alerts_alertrule_changelist"),
                          {"action": "send_test_alert", "_selected_action": [rule.pk]}, follow=True),
    ]

    assert len(webhook.received) == 5  # 2 rules × (first attempt + retry) + a test alert
    assert AlertDelivery.objects.filter(error__contains="HTTP 500").count() == 3
    stored = _every_stored_text()
    assert "django_q_task" in connection.introspection.table_names()
    texts = {
        "database": stored,
        "command output": "\n".join(outputs),
        "admin pages": "\n".join(page.content.decode() for page in pages),
        "logs": caplog.text,
    }
    assert 'alert "Ops": created' in texts["command output"]
    for where, text in texts.items():
        assert SECRET_TOKEN not in text, where
        assert SECRET_PATH not in text, where
    # It is stored, encrypted: and still sends.
    assert AlertRule.objects.values_list("webhook_url", flat=True).get(pk=rule.pk) == webhook.url


def test_a_refused_url_error_names_the_entry_and_field_not_the_url(tmp_path) -> None:
    url = "http://hooks.internal.example.com/services/T0/B0/leaky-token"
    document = tmp_path / "alerts.json"
    document.write_text(json.dumps({"alerts": [{"name": "Ops", "channel": "webhook", "url": url, "on": ["failed"]}]}))

    output = _call("apply", str(document))

    assert 'alerts[0] "Ops": url: must use https (this one is http to hooks.internal.example.com)' in output
    assert "leaky-token" not in output and "/services/" not in output
    assert AlertRule.objects.count() == 0
