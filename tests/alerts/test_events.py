"""Each event end to end: real runs (fake destination), a real HTTP endpoint for webhooks and
Django's mail outbox for email. One notification per state change, none while it holds."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from alerts.models import AlertDelivery
from alerts.tasks import check_stale_syncs
from destinations.errors import AuthenticationError
from syncs.models import RunStatus, Sync, SyncRun
from syncs.services import runs_reap_stale, sync_run_approve
from syncs.tasks import run_scheduled_sync
from tests.alerts.listener import WebhookListener
from tests.factories import (
    AlertRuleFactory,
    DestinationFactory,
    SyncFactory,
    SyncRunFactory,
    UserFactory,
)
from tests.syncs.fakes import FakeConnector, Rejection, pro_profile, set_plan

pytestmark = pytest.mark.django_db


def test_a_failing_sync_notifies_failed_once_then_recovered_once(
    fake: FakeConnector, webhook: WebhookListener, webhook_rule, alerting_run, mailoutbox
) -> None:
    AlertRuleFactory(name="Ops email", email=True, email_to=["ops@example.com", "oncall@example.com"])
    pro_profile("ana@example.com")
    sync = SyncFactory(name="Pro → SFMC")
    fake.validation_error = AuthenticationError("SFMC refused the client id and secret.")

    first = alerting_run(sync)
    alerting_run(sync)
    alerting_run(sync)

    assert first.status == RunStatus.FAILED
    assert webhook.events() == ["failed"]
    payload = webhook.received[0].json
    assert (payload["run_id"], payload["status"], payload["sync"]) == (first.pk, "failed", "Pro → SFMC")
    assert payload["message"].startswith("Sync “Pro → SFMC” failed (run #")
    assert "SFMC refused the client id and secret." in payload["message"]
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["ops@example.com", "oncall@example.com"]
    assert mailoutbox[0].subject.startswith("[CohortSync] Sync “Pro → SFMC” failed (run #")

    fake.validation_error = None
    recovered = alerting_run(sync)
    alerting_run(sync)

    assert recovered.status == RunStatus.SUCCEEDED
    assert webhook.events() == ["failed", "recovered"]
    assert webhook.received[1].json["run_id"] == recovered.pk
    assert "recovered" in webhook.received[1].json["message"] and "failed" in webhook.received[1].json["message"]
    assert [m.subject.split(":")[0] for m in mailoutbox][1].startswith("[CohortSync] Sync “Pro → SFMC” recovered")
    assert len(mailoutbox) == 2
    assert AlertDelivery.objects.count() == 4
    assert set(AlertDelivery.objects.values_list("status", flat=True)) == {AlertDelivery.Status.SENT}


def test_success_without_an_earlier_problem_notifies_nothing(
    fake: FakeConnector, webhook: WebhookListener, webhook_rule, alerting_run
) -> None:
    pro_profile("ana@example.com")
    run = alerting_run(SyncFactory())
    assert run.status == RunStatus.SUCCEEDED
    assert webhook.received == []


def test_partial_notifies_once_and_respects_min_failed_share(
    fake: FakeConnector, webhook: WebhookListener, webhook_rule, alerting_run
) -> None:
    strict = WebhookListener().start()
    try:
        AlertRuleFactory(name="Only big failures", webhook_url=strict.url, min_failed_share=0.6)
        pro_profile("ana@example.com")
        pro_profile("bad@example.com")
        fake.reject["bad@example.com"] = Rejection(code="1003")
        sync = SyncFactory()

        partial = alerting_run(sync)
        pro_profile("carol@example.com")  # the next run sends carol (ok) and bad (fails again)
        again = alerting_run(sync)

        assert (partial.status, again.status) == (RunStatus.PARTIAL, RunStatus.PARTIAL)
        assert webhook.events() == ["partial"]
        payload = webhook.received[0].json
        assert payload["counts"] == {"added": 1, "removed": 0, "failed": 1, "skipped": 0}
        assert payload["error_code"] == "1003"
        # 1 of 2 users failed (50 %): under this rule's 60 %, so it says nothing.
        assert strict.received == []
    finally:
        strict.stop()


def test_awaiting_approval_notifies_once_and_recovered_after_approval(
    fake: FakeConnector, webhook: WebhookListener, webhook_rule, alerting_run, django_capture_on_commit_callbacks
) -> None:
    profiles = [pro_profile(f"user{n}@example.com") for n in range(2)]
    sync = SyncFactory()
    alerting_run(sync)
    for profile in profiles:
        set_plan(profile, "free")

    held = alerting_run(sync)
    with django_capture_on_commit_callbacks(execute=True):
        run_scheduled_sync(sync.pk)
        run_scheduled_sync(sync.pk)

    assert held.status == RunStatus.AWAITING_APPROVAL
    assert webhook.events() == ["awaiting_approval"]
    assert "has no members now, while 2 users are acknowledged" in webhook.received[0].json["message"]

    with django_capture_on_commit_callbacks(execute=True):
        sync_run_approve(run=held, approved_by=UserFactory())

    held.refresh_from_db()
    assert held.status == RunStatus.SUCCEEDED
    assert webhook.events() == ["awaiting_approval", "recovered"]


def test_a_run_failed_by_the_stale_run_reaper_notifies(webhook: WebhookListener, webhook_rule,
                                                      django_capture_on_commit_callbacks) -> None:
    run = SyncRunFactory(status=RunStatus.RUNNING)
    long_ago = timezone.now() - dt.timedelta(hours=2)
    SyncRun.objects.filter(pk=run.pk).update(started_at=long_ago, heartbeat_at=long_ago)

    with django_capture_on_commit_callbacks(execute=True):
        assert runs_reap_stale() == 1

    assert webhook.events() == ["failed"]
    assert webhook.received[0].json["error_code"] == "worker_lost"


def test_a_run_where_every_member_is_skipped_fails_and_notifies(
    fake: FakeConnector, webhook: WebhookListener, webhook_rule, alerting_run
) -> None:
    pro_profile(None)
    pro_profile(None)
    run = alerting_run(SyncFactory(identity_property="$emial"))

    assert (run.status, run.error_code) == (RunStatus.FAILED, "no_identities")
    assert webhook.events() == ["failed"]
    assert webhook.received[0].json["error_code"] == "no_identities"
    assert "'$emial'" in webhook.received[0].json["message"]


def test_dry_runs_and_cancelled_runs_notify_nothing(
    fake: FakeConnector, webhook: WebhookListener, webhook_rule, alerting_run
) -> None:
    fake.validation_error = AuthenticationError("refused")
    pro_profile("ana@example.com")
    sync = SyncFactory()
    alerting_run(sync, dry_run=True)
    cancelled = SyncRunFactory(sync=sync, status=RunStatus.QUEUED)
    from syncs.services import sync_run_cancel

    sync_run_cancel(run=cancelled, requested_by=None)
    assert webhook.received == []


def test_rules_watch_only_their_syncs_and_destinations(
    fake: FakeConnector, webhook: WebhookListener, alerting_run
) -> None:
    fake.validation_error = AuthenticationError("refused")
    pro_profile("ana@example.com")
    marketo = DestinationFactory(marketo=True, name="Marketo")
    watched, by_destination, other = SyncFactory(name="Watched"), SyncFactory(destination=marketo), SyncFactory()
    rule = AlertRuleFactory(webhook_url=webhook.url, events=["failed"])
    rule.syncs.set([watched])
    rule.destinations.set([marketo])

    for sync in (watched, by_destination, other):
        alerting_run(sync)

    assert sorted(r.json["sync"] for r in webhook.received) == sorted([watched.name, by_destination.name])


def test_a_rule_notifies_only_the_events_it_watches(
    fake: FakeConnector, webhook: WebhookListener, alerting_run
) -> None:
    AlertRuleFactory(webhook_url=webhook.url, events=["recovered"])
    pro_profile("ana@example.com")
    sync = SyncFactory()
    fake.validation_error = AuthenticationError("refused")
    alerting_run(sync)
    fake.validation_error = None
    alerting_run(sync)
    assert webhook.events() == ["recovered"]


# --- Stale ---------------------------------------------------------------------------------


def _make_stale(sync: Sync, *, minutes: int) -> SyncRun:
    long_ago = timezone.now() - dt.timedelta(minutes=minutes)
    run = SyncRunFactory(sync=sync, status=RunStatus.SUCCEEDED)
    SyncRun.objects.filter(pk=run.pk).update(created_at=long_ago, started_at=long_ago, finished_at=long_ago)
    Sync.objects.filter(pk=sync.pk).update(created_at=long_ago, updated_at=long_ago)
    return run


def test_the_stale_check_notifies_once_and_a_success_recovers(
    fake: FakeConnector, webhook: WebhookListener, webhook_rule, alerting_run
) -> None:
    stale = SyncFactory(name="Stopped", interval_minutes=15)
    last = _make_stale(stale, minutes=50)  # 3 × 15 = 45 minutes without a finished run
    _make_stale(SyncFactory(name="Recent", interval_minutes=15), minutes=30)
    _make_stale(SyncFactory(name="Once", mode=Sync.Mode.ONE_TIME), minutes=500)
    _make_stale(SyncFactory(name="Disabled", enabled=False), minutes=500)
    waiting = SyncFactory(name="Waiting")
    _make_stale(waiting, minutes=500)
    SyncRunFactory(sync=waiting, status=RunStatus.AWAITING_APPROVAL)

    first = check_stale_syncs()
    second = check_stale_syncs()

    assert (first["stale_alerts"], first["sent"], second["stale_alerts"]) == (1, 1, 0)
    assert webhook.events() == ["stale"]
    payload = webhook.received[0].json
    assert (payload["sync"], payload["run_id"]) == ("Stopped", last.pk)
    assert "no run has finished for 50 minutes" in payload["message"]
    assert "qcluster" in payload["message"]

    pro_profile("ana@example.com")
    alerting_run(stale)
    assert webhook.events() == ["stale", "recovered"]


def test_stale_after_intervals_is_per_rule(webhook: WebhookListener) -> None:
    AlertRuleFactory(webhook_url=webhook.url, events=["stale"], stale_after_intervals=10)
    _make_stale(SyncFactory(interval_minutes=15), minutes=100)
    assert check_stale_syncs()["stale_alerts"] == 0
    _make_stale(SyncFactory(interval_minutes=15), minutes=151)
    assert check_stale_syncs()["stale_alerts"] == 1


def test_a_sync_with_a_live_run_is_not_stale(webhook: WebhookListener, webhook_rule) -> None:
    sync = SyncFactory(interval_minutes=15)
    _make_stale(sync, minutes=120)
    running = SyncRunFactory(sync=sync, status=RunStatus.RUNNING)
    SyncRun.objects.filter(pk=running.pk).update(started_at=timezone.now(), heartbeat_at=timezone.now())
    assert check_stale_syncs()["stale_alerts"] == 0
