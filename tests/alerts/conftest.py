"""Fixtures for alert tests: a webhook endpoint, rules pointed at it, runs that alert."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache

from alerts.models import AlertRule
from tests.alerts.listener import WebhookListener
from tests.factories import AlertRuleFactory
from tests.syncs.fakes import fake_connector_fixture, run_now  # noqa: F401


@pytest.fixture
def webhook() -> Iterator[WebhookListener]:
    listener = WebhookListener().start()
    yield listener
    listener.stop()


@pytest.fixture
def webhook_rule(webhook: WebhookListener) -> AlertRule:
    return AlertRuleFactory(name="Ops webhook", webhook_url=webhook.url)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    # The dashboard's stale check is throttled through the cache, which outlives a test.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def alerting_run(django_capture_on_commit_callbacks: Any) -> Any:
    """Run a sync in this process and let its alerts go out, as `run_sync --inline` does
    (the test's transaction never commits, so the after-commit send is run here)."""

    def run(sync: Any, **options: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            result = run_now(sync, **options)
        result.refresh_from_db()
        return result

    return run
