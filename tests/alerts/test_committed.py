"""Alerts with real commits, as in production: `run_sync --inline` delivers before it exits,
and an admin page load notices a stopped task cluster. (The other alert tests run inside a
transaction that never commits.)"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.urls import reverse
from django.utils import timezone

from alerts.delivery import background_wait
from alerts.models import AlertDelivery
from syncs.models import RunStatus, Sync, SyncRun
from tests.alerts.commands import run_sync_json
from tests.alerts.listener import WebhookListener
from tests.factories import AlertRuleFactory, SyncFactory, SyncRunFactory, UserFactory
from tests.syncs.fakes import FakeConnector, Rejection, pro_profile

pytestmark = pytest.mark.django_db(transaction=True)


def test_run_sync_inline_delivers_before_it_exits(fake: FakeConnector, webhook: WebhookListener) -> None:
    AlertRuleFactory(webhook_url=webhook.url)
    pro_profile("ana@example.com")
    pro_profile("bad@example.com")
    fake.reject["bad@example.com"] = Rejection(code="1003")
    sync = SyncFactory(name="Pro users")

    code, summary = run_sync_json(sync.name)

    assert (code, summary["status"]) == (1, RunStatus.PARTIAL)
    assert webhook.events() == ["partial"]
    assert webhook.received[0].json["run_id"] == summary["run_id"]
    assert AlertDelivery.objects.get().status == AlertDelivery.Status.SENT


def test_a_hanging_webhook_holds_run_sync_only_for_the_timeout(fake: FakeConnector, webhook: WebhookListener,
                                                                settings) -> None:
    settings.COHORTSYNC_ALERT_TIMEOUT_SECONDS = 0.5
    webhook.delay = 60.0
    AlertRuleFactory(webhook_url=webhook.url)
    pro_profile("ana@example.com")
    fake.reject["ana@example.com"] = Rejection(code="1003")
    sync = SyncFactory(name="Pro users")

    started = time.monotonic()
    code, summary = run_sync_json(sync.name)
    elapsed = time.monotonic() - started

    assert (code, summary["status"]) == (2, RunStatus.FAILED)  # every user failed: exit code as always
    assert elapsed < 20  # the endpoint would hold it for a minute
    run = SyncRun.objects.get(pk=summary["run_id"])
    # The run had its final status before the alert was even attempted.
    assert run.finished_at.timestamp() <= webhook.received[0].at
    delivery = AlertDelivery.objects.get()
    assert delivery.status == AlertDelivery.Status.PENDING and "did not answer within 0.5 s" in delivery.error


def test_an_admin_page_load_notices_a_stopped_cluster(webhook: WebhookListener, client) -> None:
    AlertRuleFactory(webhook_url=webhook.url, events=["stale"])
    sync = SyncFactory(name="Stopped", interval_minutes=15)
    long_ago = timezone.now() - dt.timedelta(hours=3)
    run = SyncRunFactory(sync=sync, status=RunStatus.SUCCEEDED)
    SyncRun.objects.filter(pk=run.pk).update(created_at=long_ago, finished_at=long_ago)
    Sync.objects.filter(pk=sync.pk).update(created_at=long_ago, updated_at=long_ago)
    client.force_login(UserFactory(is_superuser=True))

    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    assert background_wait(10)
    client.get(reverse("admin:index"))  # within the minute: not checked again
    assert background_wait(10)

    assert webhook.events() == ["stale"]
    assert webhook.received[0].json["sync"] == "Stopped"
    assert AlertDelivery.objects.get().status == AlertDelivery.Status.SENT
