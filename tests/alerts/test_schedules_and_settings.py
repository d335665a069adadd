"""The alerts' own schedules, delivery pruning and the settings they read."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from alerts.checks import base_url_check
from alerts.delivery import deliveries_prune
from alerts.models import AlertDelivery
from tests.factories import AlertRuleFactory


@pytest.mark.django_db
def test_setup_schedules_creates_the_stale_check_and_the_retries_once() -> None:
    call_command("setup_schedules", stdout=None)
    call_command("setup_schedules", stdout=None)

    stale = Schedule.objects.get(name="cohortsync:alerts_stale_check")
    retry = Schedule.objects.get(name="cohortsync:alerts_retry")
    assert (stale.func, stale.minutes, stale.args) == ("alerts.tasks.check_stale_syncs", 5, "")
    assert (retry.func, retry.minutes, retry.args) == ("alerts.tasks.retry_alert_deliveries", 1, "")


@pytest.mark.django_db
def test_finished_deliveries_are_pruned_with_the_run_history() -> None:
    rule = AlertRuleFactory()
    old = timezone.now() - dt.timedelta(days=settings.COHORTSYNC_RUN_RETENTION_DAYS + 1)
    kept = [
        AlertDelivery.objects.create(rule=rule, event="failed", status=AlertDelivery.Status.SENT),
        AlertDelivery.objects.create(rule=rule, event="failed", status=AlertDelivery.Status.PENDING),
    ]
    gone = AlertDelivery.objects.create(rule=rule, event="failed", status=AlertDelivery.Status.SENT)
    AlertDelivery.objects.filter(pk__in=[kept[1].pk, gone.pk]).update(created_at=old)

    assert deliveries_prune() == 1
    assert set(AlertDelivery.objects.values_list("pk", flat=True)) == {d.pk for d in kept}


def test_a_missing_base_url_is_reported_at_start_up(settings) -> None:
    settings.COHORTSYNC_BASE_URL, settings.DEBUG = "", False
    assert [warning.id for warning in base_url_check()] == ["alerts.W001"]
    settings.COHORTSYNC_BASE_URL = "https://cohortsync.example.com"
    assert base_url_check() == []


def _settings_of(tmp_path, env: dict[str, str], expression: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", "import os; os.environ['DJANGO_SETTINGS_MODULE']='cohortsync_site.settings'; "
         "from django.conf import settings; print(" + expression + ")"],
        env={"PATH": "/usr/bin:/bin", "DEBUG": "true", "COHORTSYNC_VAR_DIR": str(tmp_path), **env},
        capture_output=True, text=True, cwd=settings.BASE_DIR, check=True,
    )
    return result.stdout.strip()


def test_email_url_configures_django_email_and_debug_falls_back_to_the_console(tmp_path) -> None:
    expression = ("settings.EMAIL_BACKEND, settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS, "
                  "settings.DEFAULT_FROM_EMAIL, settings.COHORTSYNC_ALLOWED_ALERT_HOSTS")
    configured = _settings_of(tmp_path, {
        "EMAIL_URL": "smtp+tls://alerts:pw@smtp.example.com:587", "DEFAULT_FROM_EMAIL": "alerts@example.com",
        "COHORTSYNC_ALLOWED_ALERT_HOSTS": "hooks.internal:8080,alerts.local",
    }, expression)
    assert configured == ("django.core.mail.backends.smtp.EmailBackend smtp.example.com 587 True "
                          "alerts@example.com ['hooks.internal:8080', 'alerts.local']")
    unset = _settings_of(tmp_path, {}, "settings.EMAIL_BACKEND, settings.COHORTSYNC_EMAIL_CONFIGURED")
    assert unset == "django.core.mail.backends.console.EmailBackend True"
