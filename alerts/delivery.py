"""Sending alert deliveries: claim, send, record; retries with backoff.

A delivery is claimed with a conditional UPDATE (pending -> sending), so the process that
finished a run, a retry task and a web process never send the same one twice. The webhook
URL is decrypted only in memory, just before sending, and is never logged or stored in
plain text; tasks and threads are handed delivery ids.

Sending never raises: every outcome is recorded on the delivery. A failed attempt is
retried by the `retry_alert_deliveries` schedule after 1, 2, 4 ... (at most 60) minutes,
unless retrying cannot help (a refused URL, a redirect, a 4xx answer).
"""

from __future__ import annotations

import datetime as dt
import logging
import smtplib
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from alerts.messages import email_content, slack_body
from alerts.models import TEST_EVENT, AlertDelivery, AlertRule
from alerts.webhooks import AlertSendError, webhook_post
from destinations.encryption import SecretDecryptionError

logger = logging.getLogger(__name__)

MAX_PARALLEL_SENDS = 8
BACKOFF_CAP_MINUTES = 60
# A delivery claimed this long ago by a process that never recorded the outcome (it died)
# is sent again.
STUCK_SENDING_MINUTES = 10
RETRY_BATCH = 100

_background_threads: list[threading.Thread] = []
_background_lock = threading.Lock()


@dataclass(frozen=True)
class _Prepared:
    channel: str
    payload: dict[str, Any]
    webhook_format: str = ""
    email_to: tuple[str, ...] = ()
    # In memory only, for the time of one attempt.
    webhook_url: str = field(default="", repr=False)


def deliveries_send(delivery_ids: Iterable[int]) -> dict[str, int]:
    """Send each delivery that is due, in parallel, and record every outcome. Deliveries
    another process claimed, or that are not due, are left alone."""
    now = timezone.now()
    claimed = [pk for pk in dict.fromkeys(delivery_ids) if _claim(pk, now)]
    prepared: dict[int, _Prepared] = {}
    errors: dict[int, AlertSendError | None] = {}
    for pk in claimed:
        try:
            prepared[pk] = _prepare(pk)
        except AlertSendError as exc:
            errors[pk] = exc
    if len(prepared) == 1:
        ((pk, message),) = prepared.items()
        errors[pk] = _transmit(message)
    elif prepared:
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_SENDS, len(prepared)),
                                thread_name_prefix="alert-send") as pool:
            outcomes = pool.map(_transmit, prepared.values())
            errors.update(zip(prepared, outcomes, strict=True))
    counts = {"sent": 0, "failed": 0}
    for pk in claimed:
        sent = _record(pk, errors.get(pk))
        counts["sent" if sent else "failed"] += 1
    return counts


def deliveries_send_after_commit(delivery_ids: list[int]) -> None:
    """Send now, or once the surrounding transaction commits (never about a rolled-back
    state). Called by the process that finished the run, so no schedule is waited for."""
    if not delivery_ids:
        return
    if connection.in_atomic_block:
        transaction.on_commit(lambda: deliveries_send(delivery_ids), robust=True)
    else:
        deliveries_send(delivery_ids)


def deliveries_send_in_background(delivery_ids: list[int]) -> threading.Thread | None:
    """Send from a thread of this process (a web request must not wait for a webhook)."""
    if not delivery_ids:
        return None

    def send() -> None:
        try:
            deliveries_send(delivery_ids)
        except Exception as exc:  # a thread's exception would only reach stderr
            logger.error("Alert deliveries %s: sending failed (%s)", delivery_ids, type(exc).__name__)
        finally:
            connection.close()

    return background_start(send, name="alert-send")


def background_start(target: Any, *, name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    with _background_lock:
        _background_threads[:] = [t for t in _background_threads if t.is_alive()]
        _background_threads.append(thread)
    thread.start()
    return thread


def background_wait(timeout: float) -> bool:
    """Wait for this process's background sends (tests, a command about to exit); True
    when all of them ended in time."""
    with _background_lock:
        threads = list(_background_threads)
    deadline = timezone.now() + dt.timedelta(seconds=timeout)
    for thread in threads:
        thread.join(max(0.0, (deadline - timezone.now()).total_seconds()))
    return not any(thread.is_alive() for thread in threads)


def deliveries_retry_due(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Retry every delivery whose next attempt is due (the retry schedule's task)."""
    now = now or timezone.now()
    # Claimed by a process that died before recording the outcome: due again.
    AlertDelivery.objects.filter(
        status=AlertDelivery.Status.SENDING, last_attempt_at__lt=now - dt.timedelta(minutes=STUCK_SENDING_MINUTES)
    ).update(status=AlertDelivery.Status.PENDING, next_attempt_at=now)
    due = list(
        AlertDelivery.objects.filter(status=AlertDelivery.Status.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", flat=True)[:RETRY_BATCH]
    )
    return {"due": len(due), **deliveries_send(due)}


def deliveries_prune(*, older_than_days: int | None = None) -> int:
    """Delete finished deliveries older than the run retention; returns how many."""
    days = settings.COHORTSYNC_RUN_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - dt.timedelta(days=days)
    deleted, _ = AlertDelivery.objects.filter(
        created_at__lt=cutoff, status__in=[AlertDelivery.Status.SENT, AlertDelivery.Status.FAILED]
    ).delete()
    return deleted


# --- One attempt ---------------------------------------------------------------------------


def _claim(delivery_id: int, now: dt.datetime) -> bool:
    return AlertDelivery.objects.filter(
        pk=delivery_id, status=AlertDelivery.Status.PENDING, next_attempt_at__lte=now
    ).update(status=AlertDelivery.Status.SENDING, attempts=F("attempts") + 1, last_attempt_at=now) == 1


def _prepare(delivery_id: int) -> _Prepared:
    delivery = AlertDelivery.objects.select_related("rule").defer("rule__webhook_url").get(pk=delivery_id)
    rule = delivery.rule
    if not rule.enabled and delivery.event != TEST_EVENT:
        raise AlertSendError("the rule was disabled before this alert could be sent.", permanent=True)
    if rule.channel == AlertRule.Channel.EMAIL:
        if not rule.email_to:
            raise AlertSendError("the rule has no email recipients.", permanent=True)
        return _Prepared(channel=rule.channel, payload=delivery.payload, email_to=tuple(rule.email_to))
    try:
        url = AlertRule.objects.values_list("webhook_url", flat=True).get(pk=rule.pk)
    except SecretDecryptionError:
        raise AlertSendError(
            "the stored webhook URL cannot be decrypted with FIELD_ENCRYPTION_KEYS; enter it again "
            "in the rule.", permanent=True
        ) from None
    if not url:
        raise AlertSendError("the rule has no webhook URL; enter one in the rule.", permanent=True)
    return _Prepared(channel=rule.channel, payload=delivery.payload, webhook_format=rule.webhook_format,
                     webhook_url=url)


def _transmit(message: _Prepared) -> AlertSendError | None:
    """One attempt: None when delivered, else the error. Never raises; touches no database."""
    timeout = float(settings.COHORTSYNC_ALERT_TIMEOUT_SECONDS)
    try:
        if message.channel == AlertRule.Channel.EMAIL:
            _email_send(message)
        else:
            body = slack_body(message.payload) if message.webhook_format == AlertRule.WebhookFormat.SLACK else message.payload
            webhook_post(message.webhook_url, body, timeout=timeout)
    except AlertSendError as exc:
        return exc
    except Exception as exc:
        # Its text could quote the URL: only the kind of error is kept.
        logger.error("Alert send failed unexpectedly (%s)", type(exc).__name__)
        return AlertSendError(f"unexpected error while sending ({type(exc).__name__}).")
    return None


def _email_send(message: _Prepared) -> None:
    if not getattr(settings, "COHORTSYNC_EMAIL_CONFIGURED", False):
        raise AlertSendError(
            "email is not configured: set EMAIL_URL (e.g. smtp+tls://user:password@smtp.example.com:587) "
            "and DEFAULT_FROM_EMAIL.", permanent=True
        )
    subject, body = email_content(message.payload)
    email = EmailMessage(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=list(message.email_to))
    try:
        email.send(fail_silently=False)
    except smtplib.SMTPRecipientsRefused:
        raise AlertSendError("the mail server refused every recipient.", permanent=True) from None
    except smtplib.SMTPAuthenticationError:
        raise AlertSendError("the mail server refused the EMAIL_URL credentials.") from None
    except smtplib.SMTPResponseException as exc:
        raise AlertSendError(f"the mail server answered {exc.smtp_code}.") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise AlertSendError(f"could not reach the mail server ({type(exc).__name__}).") from None


def _record(delivery_id: int, error: AlertSendError | None) -> bool:
    """Store the attempt's outcome; True when delivered."""
    now = timezone.now()
    delivery = AlertDelivery.objects.only("attempts", "max_attempts", "rule_id", "event").get(pk=delivery_id)
    if error is None:
        AlertDelivery.objects.filter(pk=delivery_id).update(status=AlertDelivery.Status.SENT, sent_at=now, error="")
        logger.info("Alert delivery %s (rule %s, %s) sent", delivery_id, delivery.rule_id, delivery.event)
        return True
    attempt = f"attempt {delivery.attempts} of {delivery.max_attempts}"
    if error.permanent or delivery.attempts >= delivery.max_attempts:
        why = "not retried: it would fail the same way" if error.permanent else "gave up"
        AlertDelivery.objects.filter(pk=delivery_id).update(
            status=AlertDelivery.Status.FAILED, error=f"{error.message} ({attempt}; {why}.)"
        )
    else:
        retry_at = now + retry_delay(delivery.attempts)
        AlertDelivery.objects.filter(pk=delivery_id).update(
            status=AlertDelivery.Status.PENDING,
            next_attempt_at=retry_at,
            error=f"{error.message} ({attempt}; retried at {retry_at:%Y-%m-%d %H:%M:%S} UTC.)",
        )
    logger.warning("Alert delivery %s (rule %s, %s) failed, %s: %s", delivery_id, delivery.rule_id,
                   delivery.event, attempt, error.message)
    return False


def retry_delay(attempts: int) -> dt.timedelta:
    """1, 2, 4, 8 ... minutes after the 1st, 2nd, 3rd ... failed attempt, at most an hour."""
    return dt.timedelta(minutes=min(BACKOFF_CAP_MINUTES, 2 ** max(0, attempts - 1)))
