"""Bad input, alerts: webhook endpoints that answer slowly, endlessly, hugely or by echoing
the secret URL; rules and `apply` entries with bad values; a task cluster that stopped.
Every case ends in a recorded, specific outcome within the alert timeout, and the webhook
URL appears nowhere it could be read."""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from alerts.delivery import background_wait, deliveries_send
from alerts.models import AlertDelivery, AlertRule
from alerts.webhooks import AlertSendError, webhook_post
from tests.alerts.listener import SECRET_PATH, WebhookListener
from tests.bad_input.listeners import Listener, Send
from tests.factories import AlertRuleFactory

pytestmark = pytest.mark.django_db

TIMEOUT = 1.0
SECRET_QUERY = "token=q-secret-7781"


def _url(endpoint: Listener) -> str:
    return f"http://127.0.0.1:{endpoint.port}{SECRET_PATH}?{SECRET_QUERY}"


def _trickle(head: bytes, drip: bytes, *, every: float = 0.2, seconds: float = 20) -> Callable[..., None]:
    def answer(send: Send) -> None:
        send(head)
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            send(drip)
            time.sleep(every)

    return answer


def _endless(head: bytes) -> Callable[..., None]:
    def answer(send: Send) -> None:
        send(head)
        block = b"x" * 65536
        for _ in range(100_000):  # 6.5 GB at most, if nobody stops reading
            send(block)

    return answer


SLOW_ANSWERS = {
    "headers a byte at a time": _trickle(b"HTTP/1.1 200 OK\r\n", b"X"),
    "a 200 whose body trickles": _trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", b"."),
    "a 200 with an endless body": _endless(b"HTTP/1.1 200 OK\r\nContent-Length: 6553600000\r\n\r\n"),
    "a 500 whose body trickles": _trickle(b"HTTP/1.1 500 Oops\r\nContent-Length: 100000\r\n\r\n", b"."),
    "a 500 with an endless chunked body": _endless(b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n"
                                                   b"fffff\r\n"),
}


@pytest.fixture
def scripted() -> Iterator[Callable[..., Listener]]:
    started: list[Listener] = []

    def start(answer: Callable[[Send], None]) -> Listener:
        started.append(Listener(answer))
        return started[-1]

    yield start
    for endpoint in started:
        endpoint.close()


@pytest.mark.parametrize("answer", SLOW_ANSWERS.values(), ids=SLOW_ANSWERS.keys())
def test_a_webhook_that_never_finishes_answering_costs_one_timeout(scripted: Callable[..., Listener],
                                                                    answer: Callable[..., None]) -> None:
    endpoint = scripted(answer)
    started = time.monotonic()
    outcome: AlertSendError | None = None
    try:
        webhook_post(_url(endpoint), {"event": "test"}, timeout=TIMEOUT)
    except AlertSendError as exc:
        outcome = exc
    elapsed = time.monotonic() - started

    # A 2xx whose headers arrived counts as delivered (its body is never read); anything
    # else is an error naming the host. Either way within about one timeout, not the 20 s
    # (or gigabytes) the endpoint would take.
    assert elapsed < 4 * TIMEOUT, f"held for {elapsed:.1f} s"
    assert endpoint.received
    if outcome is not None:
        assert "127.0.0.1" in outcome.message
        assert "q-secret-7781" not in outcome.message and "xoxb" not in outcome.message


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (b"no hook at " + SECRET_PATH.encode(), "no hook at [webhook URL]"),
        (b"invalid token xoxb-very-secret-token-42 for team", "invalid token [webhook URL] for team"),
        (b"bad query q-secret-7781", "bad query [webhook URL]"),
        (b"\xff\xfe not utf-8", "not utf-8"),
    ],
)
def test_an_error_answer_that_echoes_the_secret_is_scrubbed(scripted: Callable[..., Listener],
                                                            body: bytes, shown: str) -> None:
    def answer(send: Send) -> None:
        send(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    endpoint = scripted(answer)
    with pytest.raises(AlertSendError) as caught:
        webhook_post(_url(endpoint), {"event": "test"}, timeout=TIMEOUT)
    assert shown in caught.value.message
    assert caught.value.permanent
    for secret in ("xoxb-very-secret-token-42", "q-secret-7781", SECRET_PATH):
        assert secret not in caught.value.message


def test_a_redirect_to_the_secret_names_only_its_host(scripted: Callable[..., Listener]) -> None:
    def answer(send: Send) -> None:
        send(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: https://evil.example.net:8443/steal?u="
             + SECRET_PATH.encode() + b"\r\nContent-Length: 0\r\n\r\n")

    endpoint = scripted(answer)
    with pytest.raises(AlertSendError) as caught:
        webhook_post(_url(endpoint), {"event": "test"}, timeout=TIMEOUT)
    assert "redirecting to evil.example.net:8443" in caught.value.message
    assert "steal" not in caught.value.message and "xoxb" not in caught.value.message
    assert len(endpoint.received) == 1


def test_a_slow_webhook_is_recorded_failed_and_retried_and_the_url_is_nowhere(
    scripted: Callable[..., Listener], settings: Any, caplog: pytest.LogCaptureFixture, admin_client: Any,
) -> None:
    settings.COHORTSYNC_ALERT_TIMEOUT_SECONDS = TIMEOUT
    endpoint = scripted(SLOW_ANSWERS["headers a byte at a time"])
    rule = AlertRuleFactory(name="Slow hook", webhook_url=_url(endpoint))
    delivery = AlertDelivery.objects.create(rule=rule, event="test", payload={"event": "test", "message": "hi"})

    with caplog.at_level("DEBUG"):
        counts = deliveries_send([delivery.pk])

    delivery.refresh_from_db()
    assert counts == {"sent": 0, "failed": 1}
    assert delivery.status == AlertDelivery.Status.PENDING
    assert "did not answer within 1 s" in delivery.error and "retried at" in delivery.error
    pages = [admin_client.get(reverse("admin:alerts_alertdelivery_change", args=[delivery.pk])),
             admin_client.get(reverse("admin:alerts_alertdelivery_changelist")),
             admin_client.get(reverse("admin:alerts_alertrule_change", args=[rule.pk])),
             admin_client.get(reverse("admin:alerts_alertrule_history", args=[rule.pk]))]
    dump = io.StringIO()
    call_command("dumpdata", "alerts", "django_q", stdout=dump)
    places = [page.content.decode() for page in pages] + [
        dump.getvalue(), caplog.text, delivery.error, json.dumps(delivery.payload),
        " ".join(str(entry.change_message) for entry in LogEntry.objects.all()),
        " ".join(f"{s.func} {s.args} {s.kwargs}" for s in Schedule.objects.all()),
    ]
    for place in places:
        assert "xoxb-very-secret-token-42" not in place
        assert "q-secret-7781" not in place


# --- Rules with bad values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipients", "says"),
    [
        ("ops@example.com, not-an-address", "“not-an-address” is not an email address."),
        ("ops@example.com\nBcc: everyone@example.com", "“Bcc: everyone@example.com” is not an email address."),
        ("<ops@example.com>", "is not an email address"),
        ("ops@example.com;;; ,", None),
        ("Ops Team <ops@example.com>", "is not an email address"),
        ("ops@exa mple.com", "is not an email address"),
        ("", "Enter at least one email address."),
    ],
)
def test_email_rules_with_bad_addresses_are_explained(admin_client: Any, recipients: str, says: str | None) -> None:
    response = admin_client.post(reverse("admin:alerts_alertrule_add"), {
        "name": "Mail ops", "enabled": "on", "channel": "email", "events": ["failed"],
        "recipients": recipients, "stale_after_intervals": "3", "webhook_format": "json",
    })
    if says is None:
        assert response.status_code == 302
        assert AlertRule.objects.get(name="Mail ops").email_to == ["ops@example.com"]
        return
    assert response.status_code == 200
    assert says in response.content.decode()
    assert not AlertRule.objects.exists()


def _apply(tmp_path: Path, alerts: list[dict[str, Any]], environ: dict[str, str] | None = None) -> tuple[int, str]:
    path = tmp_path / "cohortsync.json"
    path.write_text(json.dumps({"alerts": alerts}))
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("apply", str(path), stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue() + err.getvalue()
    except Exception as exc:  # CommandError
        return 1, out.getvalue() + err.getvalue() + str(exc)
    return 0, out.getvalue() + err.getvalue()


HOOK = "https://hooks.example.com/services/T1/B1/apply-secret-991"

BAD_ALERT_ENTRIES = [
    ({"channel": "webhook", "url": HOOK, "on": ["failed"], "min_failed_share": 1.5}, "min_failed_share"),
    ({"channel": "webhook", "url": HOOK, "on": ["failed"], "min_failed_share": True}, "min_failed_share"),
    ({"channel": "webhook", "url": HOOK, "on": ["failed"], "min_failed_share": "1%"}, "min_failed_share"),
    ({"channel": "webhook", "url": HOOK, "on": ["failed"], "stale_after_intervals": 0}, "stale_after_intervals"),
    ({"channel": "webhook", "url": HOOK, "on": ["failed"], "stale_after_intervals": 2.5}, "stale_after_intervals"),
    ({"channel": "webhook", "url": HOOK, "on": []}, "on"),
    ({"channel": "webhook", "url": HOOK, "on": "failed"}, "on"),
    ({"channel": "webhook", "url": HOOK, "on": [{"event": "failed"}]}, "unknown event"),
    ({"channel": "webhook", "url": HOOK, "on": ["failed"], "format": "teams"}, "format"),
    ({"channel": "webhook", "url": HOOK.replace("https", "http"), "on": ["failed"]}, "must use https"),
    ({"channel": "webhook", "url": "https://user:pw@hooks.example.com/x", "on": ["failed"]}, "url"),
    ({"channel": "webhook", "url": "https://127.0.0.1\\@hooks.example.com/apply-secret-991", "on": ["failed"]}, "url"),
    ({"channel": "webhook", "url": {"env": "NO_SUCH_VARIABLE"}, "on": ["failed"]}, "NO_SUCH_VARIABLE"),
    ({"channel": "webhook", "on": ["failed"]}, "is required for a webhook alert"),
    ({"channel": "email", "to": ["ops@example.com", "nope"], "on": ["failed"]}, "“nope” is not an email address"),
    ({"channel": "email", "to": "ops@example.com", "on": ["failed"]}, "must be a non-empty list of email addresses"),
    ({"channel": "email", "to": ["ops@example.com"], "on": ["failed"], "url": HOOK}, "does not apply to email"),
    ({"channel": "sms", "to": ["+351"], "on": ["failed"]}, "channel"),
    ({"channel": "webhook", "url": HOOK, "on": ["failed"], "syncs": ["No such sync"]}, 'no sync named "No such sync"'),
    ({"channel": "webhook", "url": HOOK, "on": ["failed"], "syncs": "all"}, "must be a list of sync names"),
    ({"channel": "webhook", "url": HOOK, "on": ["failed"], "enabled": "yes"}, "must be true or false"),
]


@pytest.mark.parametrize(("entry", "says"), BAD_ALERT_ENTRIES, ids=[says for _, says in BAD_ALERT_ENTRIES])
def test_bad_alert_entries_in_apply_name_entry_and_field_never_the_url(tmp_path: Path, entry: dict[str, Any],
                                                                      says: str) -> None:
    code, output = _apply(tmp_path, [{"name": "Ops", **entry}])
    assert code != 0
    assert says in output
    assert "alerts" in output and "Traceback" not in output
    assert "apply-secret-991" not in output and "pw@" not in output
    assert not AlertRule.objects.exists()


# --- A stopped task cluster -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_with_the_cluster_stopped_the_admin_index_also_retries_failed_deliveries(admin_client: Any) -> None:
    # A delivery whose first attempt failed waits for the retry schedule, which needs the
    # task cluster. Whoever opens the admin sends it instead, as the stale check does.
    listener = WebhookListener().start()
    try:
        rule = AlertRuleFactory(name="Failed only", webhook_url=listener.url, events=["failed"])
        delivery = AlertDelivery.objects.create(
            rule=rule, event="failed", payload={"event": "failed", "message": "Sync X failed"},
            status=AlertDelivery.Status.PENDING, attempts=1,
            next_attempt_at=timezone.now() - dt.timedelta(minutes=1), error="timed out (attempt 1 of 8)",
        )

        assert admin_client.get(reverse("admin:index")).status_code == 200
        assert background_wait(10)

        delivery.refresh_from_db()
        assert delivery.status == AlertDelivery.Status.SENT
        assert listener.events() == ["failed"]
    finally:
        listener.stop()
