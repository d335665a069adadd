"""Alert webhooks: which URLs may be called, and the one place that calls them.

A webhook URL is a secret (Slack's carries its credential in the path): nothing here puts
it in an error message or a log line. Errors name the host only.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings

from destinations.errors import EndpointNotAllowedError
from destinations.url_policy import hosts_setting, is_public_host_name, url_parse

logger = logging.getLogger(__name__)

USER_AGENT = "CohortSync-alerts/1"
RESPONSE_EXCERPT_CHARS = 200


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
    """POST `body` as JSON to `url`; AlertSendError unless it answers 2xx. Redirects are
    refused, not followed; proxies and .netrc from the environment are ignored."""
    webhook_url_check(url)
    host = webhook_host(url)
    session = requests.Session()
    session.trust_env = False
    try:
        response = session.post(
            url,
            json=body,
            timeout=(timeout, timeout),
            allow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )
    except requests.Timeout:
        raise AlertSendError(f"{host} did not answer within {timeout:g} s.") from None
    except requests.ConnectionError:
        raise AlertSendError(f"could not connect to {host} (connection refused, DNS or TLS error).") from None
    except requests.RequestException as exc:
        raise AlertSendError(f"the request to {host} failed ({type(exc).__name__}).") from None
    finally:
        session.close()
    status = response.status_code
    if 300 <= status < 400:
        target = webhook_host(response.headers.get("Location", ""))
        raise AlertSendError(
            f"{host} answered {status}, redirecting to {target}: redirects are not followed. "
            "Enter the final URL in the rule.",
            permanent=True,
        )
    if status >= 400:
        excerpt = _scrub(response.text[:RESPONSE_EXCERPT_CHARS].strip(), url)
        detail = f": {excerpt}" if excerpt else ""
        # 408 and 429 say "later"; other 4xx will answer the same (a revoked Slack webhook).
        permanent = 400 <= status < 500 and status not in (408, 429)
        raise AlertSendError(f"{host} answered HTTP {status}{detail}", permanent=permanent)


def _scrub(text: str, url: str) -> str:
    """An answer may echo the URL it was sent to: replace it (and its path) before keeping it."""
    path = urlsplit(url).path
    for secret in (url, path if len(path) > 1 else ""):
        if secret:
            text = text.replace(secret, "[webhook URL]")
    return text
