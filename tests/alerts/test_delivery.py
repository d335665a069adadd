"""A webhook that fails or hangs never changes a run; the delivery records the error and is
retried with backoff by the task queue; redirects and refusals are not retried."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from django_q.tasks import async_task

from alerts.delivery import retry_delay
from alerts.models import AlertDelivery
from destinations.errors import AuthenticationError
from syncs.models import RunStatus
from tests.alerts.commands import run_sync_json
from tests.alerts.listener import WebhookListener
from tests.factories import AlertRuleFactory, SyncFactory
from tests.syncs.fakes import FakeConnector, Rejection, pro_profile

pytestmark = pytest.mark.django_db


def _retry_due_now() -> dict:
    """What the retry schedule does, through the task queue, once the backoff has passed."""
    AlertDelivery.objects.filter(status=AlertDelivery.Status.PENDING).update(
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )
    task_id = async_task("alerts.tasks.retry_alert_deliveries", sync=True)
    from django_q.models import Task

    return Task.objects.get(id=task_id).result


@pytest.mark.parametrize("answer", ["http_500", "timeout"])
def test_a_failing_webhook_changes_neither_the_run_nor_the_exit_code_and_is_retried(
    answer: str, fake: FakeConnector, webhook: WebhookListener, webhook_rule, settings,
    django_capture_on_commit_callbacks,
) -> None:
    settings.COHORTSYNC_ALERT_TIMEOUT_SECONDS = 0.3
    if answer == "http_500":
        webhook.status = 500
    else:
        webhook.delay = 5.0
    pro_profile("ana@example.com")
    pro_profile("bad@example.com")
    fake.reject["bad@example.com"] = Rejection(code="1003")
    sync = SyncFactory(name="Pro users")

    code, summary = run_sync_json(sync.name, django_capture_on_commit_callbacks)

    assert (code, summary["status"]) == (1, RunStatus.PARTIAL)
    delivery = AlertDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.run_id) == (AlertDelivery.Status.PENDING, 1, summary["run_id"])
    expected = "answered HTTP 500: server error" if answer == "http_500" else "did not answer within 0.3 s"
    assert expected in delivery.error and "attempt 1 of 8" in delivery.error
    assert delivery.next_attempt_at > timezone.now() + dt.timedelta(seconds=50)

    webhook.status, webhook.delay = 200, 0.0
    result = _retry_due_now()

    delivery.refresh_from_db()
    assert result == {"due": 1, "sent": 1, "failed": 0, "pruned": 0}
    assert (delivery.status, delivery.attempts, delivery.error) == (AlertDelivery.Status.SENT, 2, "")
    assert webhook.events() == ["partial", "partial"]
    assert webhook.received[0].body == webhook.received[1].body


def test_retries_back_off_and_give_up(fake: FakeConnector, webhook: WebhookListener, webhook_rule, alerting_run) -> None:
    assert [retry_delay(n).total_seconds() / 60 for n in (1, 2, 3, 4, 7, 8)] == [1, 2, 4, 8, 60, 60]
    webhook.status = 503
    fake.validation_error = AuthenticationError("refused")
    pro_profile("ana@example.com")
    run = alerting_run(SyncFactory())
    assert run.status == RunStatus.FAILED

    for _ in range(7):
        _retry_due_now()

    delivery = AlertDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == (AlertDelivery.Status.FAILED, 8)
    assert "gave up" in delivery.error
    assert len(webhook.received) == 8
    assert _retry_due_now()["due"] == 0


def test_a_redirect_is_not_followed_and_not_retried(fake: FakeConnector, webhook: WebhookListener, webhook_rule,
                                                    alerting_run) -> None:
    webhook.status, webhook.location = 302, "https://elsewhere.example.net/capture"
    fake.validation_error = AuthenticationError("refused")
    pro_profile("ana@example.com")
    alerting_run(SyncFactory())

    delivery = AlertDelivery.objects.get()
    assert delivery.status == AlertDelivery.Status.FAILED
    assert "redirecting to elsewhere.example.net" in delivery.error
    assert "not followed" in delivery.error
    assert len(webhook.received) == 1


def test_a_client_error_is_not_retried(fake: FakeConnector, webhook: WebhookListener, webhook_rule, alerting_run) -> None:
    webhook.status = 404
    fake.validation_error = AuthenticationError("refused")
    pro_profile("ana@example.com")
    alerting_run(SyncFactory())
    delivery = AlertDelivery.objects.get()
    assert delivery.status == AlertDelivery.Status.FAILED
    assert "HTTP 404" in delivery.error and "not retried" in delivery.error


def test_a_host_no_longer_allowed_is_refused_at_send_time(fake: FakeConnector, webhook: WebhookListener,
                                                          webhook_rule, alerting_run, settings) -> None:
    settings.COHORTSYNC_ALLOWED_ALERT_HOSTS = []
    fake.validation_error = AuthenticationError("refused")
    pro_profile("ana@example.com")
    alerting_run(SyncFactory())
    delivery = AlertDelivery.objects.get()
    assert delivery.status == AlertDelivery.Status.FAILED
    assert "must use https (this one is http to 127.0.0.1:" in delivery.error
    assert webhook.received == []


def test_email_without_email_url_fails_saying_so(fake: FakeConnector, alerting_run, settings, mailoutbox) -> None:
    settings.COHORTSYNC_EMAIL_CONFIGURED = False
    AlertRuleFactory(email=True)
    fake.validation_error = AuthenticationError("refused")
    pro_profile("ana@example.com")
    run = alerting_run(SyncFactory())
    assert run.status == RunStatus.FAILED
    delivery = AlertDelivery.objects.get()
    assert delivery.status == AlertDelivery.Status.FAILED and "set EMAIL_URL" in delivery.error
    assert mailoutbox == []


def test_a_disabled_rule_sends_nothing(fake: FakeConnector, webhook: WebhookListener, alerting_run) -> None:
    AlertRuleFactory(webhook_url=webhook.url, enabled=False)
    fake.validation_error = AuthenticationError("refused")
    pro_profile("ana@example.com")
    alerting_run(SyncFactory())
    assert AlertDelivery.objects.count() == 0 and webhook.received == []
