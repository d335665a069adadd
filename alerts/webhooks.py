"""Alert webhooks: which URLs may be called, and the one place that calls them.

A webhook URL is a secret (Slack's carries its credential in the path): nothing here puts
it in an error message or a log line. Errors name the host only.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from django.conf import settings

from destinations.errors import EndpointNotAllowedError
from destinations.url_policy import hosts_setting, is_public_host_name, url_parse

logger = logging.getLogger(__name__)

USER_AGENT = "CohortSync-alerts/1"
RESPONSE_EXCERPT_CHARS = 200
# Bytes of an error answer read for its excerpt; the rest of any answer is never read.
RESPONSE_EXCERPT_BYTES = 4 * RESPONSE_EXCERPT_CHARS
# Path segments and query values this long may be credentials (Slack's are 24 characters).
SECRET_PART_MIN_CHARS = 6


class AlertSendError(Exception):
    """A notification could not be delivered. `permanent`: retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class WebhookUrlRefused(AlertSendError):
    """The URL is outside the alert URL policy. The message never contains the URL."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


def webhook_host(url: str) -> str:
    """`host` or `host:port` of the URL, for messages (never the path, which may be a secret)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = (parts.hostname or "").lower()
    return f"{host}:{port}" if port else host or "?"


def webhook_url_check(url: str) -> None:
    """Raise WebhookUrlRefused unless alerts may POST to `url`: https to a public host name,
    or http or https to a host listed in COHORTSYNC_ALLOWED_ALERT_HOSTS (`host` or
    `host:port`). The URL is read by the destinations' URL policy (destinations.url_policy),
    so what is checked is what requests connects to."""
    try:
        parsed = url_parse(url)
    except EndpointNotAllowedError as exc:
        raise WebhookUrlRefused(f"is not usable: {_scrub(exc.message, url or '')}") from None
    allowed = hosts_setting(settings.COHORTSYNC_ALLOWED_ALERT_HOSTS)
    if parsed.host in allowed or parsed.authority in allowed:
        return
    if parsed.scheme != "https":
        raise WebhookUrlRefused(
            f"must use https (this one is http to {parsed.authority}). Plain http is allowed only "
            "to hosts listed in COHORTSYNC_ALLOWED_ALERT_HOSTS."
        )
    if not is_public_host_name(parsed.host):
        raise WebhookUrlRefused(
            f"must point at a public host name, not {parsed.authority} (an address, a single "
            "label or a private name). List internal hosts in COHORTSYNC_ALLOWED_ALERT_HOSTS."
        )


def webhook_post(url: str, body: dict[str, Any], *, timeout: float) -> None:
    """POST `body` as JSON to `url`; AlertSendError unless it answers 2xx within `timeout`
    seconds in all. Redirects are refused, not followed; proxies and .netrc from the
    environment are ignored.

    Socket timeouts bound each read, not the whole answer: an endpoint that sends a byte
    now and then (headers or body), or an endless body, would hold the sender (a worker,
    `run_sync --inline` before it exits) for as long as it likes. So the attempt runs in a
    thread that is given up on at the deadline, and only the status line, the headers and
    a short excerpt of an error are read.
    """
    webhook_url_check(url)
    host = webhook_host(url)
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            _post(url, body, host=host, timeout=timeout, deadline=time.monotonic() + timeout)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=attempt, name="alert-webhook", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise AlertSendError(f"{host} did not answer within {timeout:g} s.")
    if outcome[0] is not None:
        raise outcome[0]


def _post(url: str, body: dict[str, Any], *, host: str, timeout: float, deadline: float) -> None:
    session = requests.Session()
    session.trust_env = False
    try:
        try:
            response = session.post(
                url,
                json=body,
                timeout=(timeout, timeout),
                allow_redirects=False,
                stream=True,
                headers={"User-Agent": USER_AGENT},
            )
        except requests.Timeout:
            raise AlertSendError(f"{host} did not answer within {timeout:g} s.") from None
        except requests.ConnectionError:
            raise AlertSendError(f"could not connect to {host} (connection refused, DNS or TLS error).") from None
        except requests.RequestException as exc:
            raise AlertSendError(f"the request to {host} failed ({type(exc).__name__}).") from None
        with response:
            _check_answer(response, url=url, host=host, deadline=deadline)
    finally:
        session.close()


def _check_answer(response: requests.Response, *, url: str, host: str, deadline: float) -> None:
    status = response.status_code
    if 300 <= status < 400:
        target = webhook_host(response.headers.get("Location", ""))
        raise AlertSendError(
            f"{host} answered {status}, redirecting to {target}: redirects are not followed. "
            "Enter the final URL in the rule.",
            permanent=True,
        )
    if status >= 400:
        excerpt = _scrub(_excerpt(response, deadline)[:RESPONSE_EXCERPT_CHARS].strip(), url)
        detail = f": {excerpt}" if excerpt else ""
        # 408 and 429 say "later"; other 4xx will answer the same (a revoked Slack webhook).
        permanent = 400 <= status < 500 and status not in (408, 429)
        raise AlertSendError(f"{host} answered HTTP {status}{detail}", permanent=permanent)


def _excerpt(response: requests.Response, deadline: float) -> str:
    """The start of an error answer: at most RESPONSE_EXCERPT_BYTES, whatever has come by
    the deadline."""
    received = bytearray()
    try:
        for chunk in response.iter_content(chunk_size=64):
            received += chunk
            if len(received) >= RESPONSE_EXCERPT_BYTES or time.monotonic() >= deadline:
                break
    except requests.RequestException:
        pass  # what arrived before the connection broke is still worth showing
    return bytes(received[:RESPONSE_EXCERPT_BYTES]).decode(response.encoding or "utf-8", errors="replace")


def _scrub(text: str, url: str) -> str:
    """An answer may echo the URL it was sent to, or only its credential (a path segment, a
    query value): replace each of them before keeping any of it."""
    parts = urlsplit(url)
    secrets = [url, parts.path if len(parts.path) > 1 else "", parts.query]
    secrets += [segment for segment in parts.path.split("/") if len(segment) >= SECRET_PART_MIN_CHARS]
    secrets += [value for _, value in parse_qsl(parts.query) if len(value) >= SECRET_PART_MIN_CHARS]
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, "[webhook URL]")
    return text
