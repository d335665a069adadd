"""Alert rules and deliveries in the admin: a write-only URL, a permission-checked test alert."""

from __future__ import annotations

import pytest
from django.urls import reverse

from alerts.models import AlertDelivery, AlertRule
from tests.alerts.listener import SECRET_PATH, WebhookListener
from tests.factories import AlertRuleFactory, SyncFactory
from tests.syncs.admin_helpers import action_names, messages_of, staff_client

pytestmark = pytest.mark.django_db

ADD = reverse("admin:alerts_alertrule_add")
CHANGELIST = reverse("admin:alerts_alertrule_changelist")


def _form(**values: object) -> dict[str, object]:
    return {
        "name": "Ops", "enabled": "on", "channel": "webhook", "events": ["failed", "recovered"],
        "new_webhook_url": "", "webhook_format": "json", "recipients": "", "stale_after_intervals": 3,
        "min_failed_share": "", **values,
    }


def test_adding_a_webhook_rule_stores_the_url_encrypted_and_never_shows_it(admin_client, webhook: WebhookListener) -> None:
    sync = SyncFactory(name="Pro users")

    response = admin_client.post(ADD, _form(new_webhook_url=webhook.url, syncs=[sync.pk]))

    assert response.status_code == 302, response.context["adminform"].form.errors
    rule = AlertRule.objects.get(name="Ops")
    assert (rule.webhook_url, rule.events, list(rule.syncs.all())) == (webhook.url, ["failed", "recovered"], [sync])
    page = admin_client.get(reverse("admin:alerts_alertrule_change", args=[rule.pk])).content.decode()
    assert SECRET_PATH not in page and "set (never shown)" in page
    # Saving without a new URL keeps the stored one.
    response = admin_client.post(reverse("admin:alerts_alertrule_change", args=[rule.pk]),
                                 _form(events=["failed"], syncs=[sync.pk]))
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.webhook_url, rule.events) == (webhook.url, ["failed"])


def test_the_form_refuses_a_plain_http_url_without_repeating_it(admin_client, settings) -> None:
    settings.COHORTSYNC_ALLOWED_ALERT_HOSTS = []
    response = admin_client.post(ADD, _form(new_webhook_url="http://hooks.internal.example.com/T0/leaky-token"))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["new_webhook_url"]
    assert errors == ["The webhook URL must use https (this one is http to hooks.internal.example.com). Plain "
                      "http is allowed only to hosts listed in COHORTSYNC_ALLOWED_ALERT_HOSTS."]
    assert "leaky-token" not in response.content.decode()


def test_an_email_rule_needs_valid_recipients(admin_client) -> None:
    response = admin_client.post(ADD, _form(channel="email", recipients="ops@example.com, nope"))
    assert response.context["adminform"].form.errors["recipients"] == ["“nope” is not an email address."]

    response = admin_client.post(ADD, _form(channel="email", recipients="ops@example.com\noncall@example.com"))
    assert response.status_code == 302
    assert AlertRule.objects.get().email_to == ["ops@example.com", "oncall@example.com"]


def test_send_test_alert_needs_its_permission(webhook: WebhookListener) -> None:
    rule = AlertRuleFactory(name="Ops", webhook_url=webhook.url)
    viewer = staff_client(["alerts.view_alertrule"])
    assert "send_test_alert" not in action_names(viewer.get(CHANGELIST))
    response = viewer.post(CHANGELIST, {"action": "send_test_alert", "_selected_action": [rule.pk]})
    assert webhook.received == [] and response.status_code in (200, 302)

    tester = staff_client(["alerts.view_alertrule", "alerts.send_test_alert"])
    response = tester.post(CHANGELIST, {"action": "send_test_alert", "_selected_action": [rule.pk]}, follow=True)

    assert messages_of(response) == ["Test alert sent through “Ops”."]
    assert webhook.events() == ["test"]
    assert webhook.received[0].json["message"] == "Test alert from the CohortSync rule “Ops”: this channel works."
    delivery = AlertDelivery.objects.get()
    assert (delivery.event, delivery.status) == ("test", AlertDelivery.Status.SENT)


def test_a_failed_test_alert_says_why(admin_client, webhook: WebhookListener) -> None:
    webhook.status = 403
    rule = AlertRuleFactory(name="Ops", webhook_url=webhook.url)
    response = admin_client.post(CHANGELIST, {"action": "send_test_alert", "_selected_action": [rule.pk]}, follow=True)
    (message,) = messages_of(response)
    assert message.startswith("Test alert through “Ops” failed: 127.0.0.1:") and "answered HTTP 403" in message
    assert AlertDelivery.objects.get().status == AlertDelivery.Status.FAILED  # a test is never retried


def test_deliveries_are_listed_read_only(admin_client) -> None:
    rule = AlertRuleFactory(name="Ops")
    delivery = AlertDelivery.objects.create(
        rule=rule, event="failed", status=AlertDelivery.Status.FAILED, attempts=8,
        error="hooks.example.com answered HTTP 500 (attempt 8 of 8; gave up.)",
        payload={"sync": "Pro users", "message": "Sync “Pro users” failed (run #3): boom"},
    )
    page = admin_client.get(reverse("admin:alerts_alertdelivery_changelist")).content.decode()
    assert "Pro users" in page and "answered HTTP 500" in page and "Failed (gave up)" in page
    detail = admin_client.get(reverse("admin:alerts_alertdelivery_change", args=[delivery.pk]))
    assert detail.status_code == 200 and "Sync “Pro users” failed (run #3): boom" in detail.content.decode()
    assert admin_client.get(reverse("admin:alerts_alertdelivery_add")).status_code == 403


def test_listing_rules_and_deliveries_never_decrypts_a_secret(admin_client, settings) -> None:
    from tests.factories import DestinationFactory

    destination = DestinationFactory(name="SFMC prod")
    rule = AlertRuleFactory(name="Ops")
    rule.destinations.set([destination])
    AlertDelivery.objects.create(rule=rule, event="failed")
    # With keys that decrypt nothing, a page that decrypted a secret would fail.
    settings.FIELD_ENCRYPTION_KEYS = ["bm8tc3VjaC1rZXktbm8tc3VjaC1rZXktbm8tc3VjaDE="]

    rules = admin_client.get(CHANGELIST)
    deliveries = admin_client.get(reverse("admin:alerts_alertdelivery_changelist"))

    assert rules.status_code == 200 and "all of SFMC prod" in rules.content.decode()
    assert deliveries.status_code == 200 and ">Ops<" in deliveries.content.decode()
