"""The one HTTP choke point shared by every destination client.

Each destination's client module builds an `HttpTransport` and does all its HTTP through
it. The transport:
- applies destinations.url_policy to exactly the URL it hands to requests, before a byte is
  sent: malformed or ambiguous URLs, and hosts outside the official API hosts or
  COHORTSYNC_ALLOWED_API_HOSTS, are refused;
- never follows a redirect: a 3xx answer is a permanent error naming the refused host;
- always sets timeouts;
- keeps request rate, concurrency and daily calls within the destination account's budget
  (destinations.budget), shared by every thread, process and host;
- retries transient failures (network errors, 5xx, 429 and whatever the client's
  `check` callback classifies as transient) with exponential backoff and jitter,
  honouring Retry-After;
- counts every request, so runs can report API calls.
It never logs request bodies, headers or query strings (they carry secrets and tokens).
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.cache import cache as django_cache

from destinations.budget import AccountBudget
from destinations.errors import (
    DestinationError,
    RateLimitedError,
    TransientError,
)

# Re-exported: callers have always found the allow-list entry point here.
from destinations.url_policy import ensure_url_allowed as ensure_url_allowed
from destinations.url_policy import redirect_refused

logger = logging.getLogger(__name__)

# A Retry-After longer than this is not waited out inside a run; the error is raised instead.
MAX_RETRY_AFTER_SECONDS = 120.0

# Set while a person waits for the calls (see interactive_calls): when they must be done.
_interactive_deadline: ContextVar[tuple[float, float] | None] = ContextVar(
    "cohortsync_interactive_deadline", default=None
)


@contextmanager
def interactive_calls(seconds: float | None = None) -> Iterator[None]:
    """Destination calls a person is waiting for (an admin form, Test connection): each
    request is tried once, without backoff, and all of them together end within `seconds`
    (COHORTSYNC_INTERACTIVE_TIMEOUT_SECONDS). An unreachable destination then answers with
    a TransientError in seconds instead of after minutes of retries."""
    if seconds is None:
        seconds = float(getattr(settings, "COHORTSYNC_INTERACTIVE_TIMEOUT_SECONDS", 10.0))
    token = _interactive_deadline.set((time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        _interactive_deadline.reset(token)


class TokenExpiredError(TransientError):
    """The access token was refused (401, Marketo 601/602): refresh once, then retry.

    Raised by a client's `check` callback; the transport passes it straight up so the
    client can refresh its token.
    """

    default_code = "token_expired"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Backoff before attempt `attempt + 1`: exponential with full jitter, or Retry-After."""
        if retry_after is not None:
            return retry_after
        ceiling = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return random.uniform(ceiling / 2, ceiling)


class HttpTransport:
    def __init__(
        self,
        *,
        budget: AccountBudget | None = None,
        max_concurrency: int | None = None,
        retry: RetryPolicy | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.session = requests.Session()
        # The environment (proxies, CA bundle) is read once per host below, not on every
        # request: requests re-reads it per request, which at 150 requests a second was a
        # tenth of the process's time. Nor is ~/.netrc consulted: every call carries its
        # own credentials.
        self.session.trust_env = False
        self._environment: dict[tuple[str, str], dict[str, Any]] = {}
        if max_concurrency is None:
            max_concurrency = budget.limits.max_concurrency if budget is not None else 4
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=max_concurrency + 2)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        # The account's budget: every request start but the unbudgeted ones draws on it.
        self.budget = budget
        self.max_concurrency = max_concurrency
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self.retry = retry or RetryPolicy()
        self.timeout = (connect_timeout, read_timeout or settings.COHORTSYNC_HTTP_TIMEOUT_SECONDS)
        self._sleep = sleep
        self._calls = 0
        self._calls_lock = threading.Lock()

    @property
    def api_calls(self) -> int:
        return self._calls

    def request(
        self,
        method: str,
        url: str,
        *,
        check: Callable[[requests.Response], None] | None = None,
        budgeted: bool = True,
        **kwargs: Any,
    ) -> requests.Response:
        """Send with retries. `check` may raise TransientError (retried) or any other
        DestinationError (raised at once) for responses that are errors in disguise.
        `budgeted=False`: the request does not draw on the account's budget (calls the
        platform does not count, such as Marketo's identity endpoint). Each attempt of a
        budgeted request takes a start (and a day's unit) of its own: the platform counts
        retries too. A used-up daily quota raises DailyQuotaReached before anything is sent."""
        ensure_url_allowed(url)
        # A redirect would take the request (and its credentials) to a URL nobody checked.
        kwargs["allow_redirects"] = False
        kwargs.setdefault("timeout", self.timeout)
        for name, value in self._environment_for(url).items():
            kwargs.setdefault(name, value)
        interactive = _interactive_deadline.get()
        max_attempts = 1 if interactive is not None else self.retry.max_attempts
        attempt = 0
        while True:
            attempt += 1
            if interactive is not None:
                kwargs["timeout"] = _interactive_timeout(kwargs["timeout"], interactive, url)
            try:
                response = self._send_once(method, url, budgeted=budgeted, interactive=interactive, **kwargs)
                self._raise_for_transport_status(response, url)
                if check is not None:
                    check(response)
                return response
            except TokenExpiredError:
                raise
            except TransientError as exc:
                if attempt >= max_attempts:
                    raise
                if exc.retry_after is not None and exc.retry_after > MAX_RETRY_AFTER_SECONDS:
                    raise
                delay = self.retry.delay(attempt, exc.retry_after)
                logger.info(
                    "%s %s: %s; retrying in %.1fs (attempt %d of %d)",
                    method, _safe_url(url), exc, delay, attempt + 1, self.retry.max_attempts,
                )
                self._sleep(delay)

    def _environment_for(self, url: str) -> dict[str, Any]:
        """Proxies and CA bundle from the environment, as requests reads them, per host."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        environment = self._environment.get(key)
        if environment is None:
            ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            environment = {"proxies": requests.utils.get_environ_proxies(url), "verify": ca_bundle or True}
            self._environment[key] = environment
        return environment

    def _send_once(
        self, method: str, url: str, *, budgeted: bool, interactive: tuple[float, float] | None, **kwargs: Any
    ) -> requests.Response:
        with self._slots:
            # The budget is drawn on once a slot of this process is ours, right before
            # sending: a start taken earlier and then spent waiting for a slot would reach
            # the destination late, and the call one window after it early enough to be refused.
            lease = None
            if self.budget is not None and budgeted:
                max_wait = None if interactive is None else max(0.0, interactive[0] - time.monotonic())
                lease = self.budget.start(max_wait=max_wait)
            with self._calls_lock:
                self._calls += 1
            try:
                return self.session.request(method, url, **kwargs)
            except requests.Timeout:
                waited = f"{kwargs.get('timeout', self.timeout)[1]:.1f}".removesuffix(".0")
                raise TransientError(
                    f"{_safe_url(url)} did not answer within {waited}s.", code="timeout"
                ) from None
            except requests.ConnectionError:
                raise TransientError(
                    f"Could not connect to {_safe_url(url)} (network error).", code="network_error"
                ) from None
            except requests.RequestException as exc:
                raise DestinationError(
                    f"Request to {_safe_url(url)} failed: {type(exc).__name__}.", code="request_error"
                ) from None
            finally:
                if lease is not None:
                    self.budget.finish(lease)  # type: ignore[union-attr]

    @staticmethod
    def _raise_for_transport_status(response: requests.Response, url: str) -> None:
        if 300 <= response.status_code < 400:
            raise redirect_refused(
                status=response.status_code, location=response.headers.get("Location"), url=url
            )
        if response.status_code == 429:
            raise RateLimitedError(
                "The destination is throttling requests (HTTP 429).",
                code="http_429",
                status=429,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if response.status_code >= 500:
            raise TransientError(
                f"The destination had a server error (HTTP {response.status_code}).",
                code=f"http_{response.status_code}",
                status=response.status_code,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )


def _interactive_timeout(
    timeout: tuple[float, float], interactive: tuple[float, float], url: str
) -> tuple[float, float]:
    """The (connect, read) timeout cut to what is left of an interactive deadline."""
    deadline, seconds = interactive
    left = deadline - time.monotonic()
    if left <= 0.05:
        raise TransientError(
            f"{_safe_url(url)} was not reached within {seconds:.0f}s (the time a check a "
            "person waits for may take).", code="timeout",
        )
    return (min(timeout[0], left), min(timeout[1], left))


def _safe_url(url: str) -> str:
    """scheme://host/path, without the query string (which may carry a token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


@dataclass(frozen=True)
class AccessToken:
    value: str
    expires_at: float
    extra: dict[str, Any]


class TokenCache:
    """Access tokens per credentials, in the Django cache so every worker shares them.

    The cache key is a hash of the credentials; the token is dropped shortly before expiry.
    Each instance also remembers the tokens it has seen: a run makes thousands of requests,
    and the shared cache (a database table by default) is read only when the remembered
    token is missing, expiring or dropped. A token refused by the destination is dropped
    by the client (401 / 601 / 602), which clears the memory too.
    """

    def __init__(self, *, namespace: str, early_expiry_seconds: float = 60.0, cache: Any = None) -> None:
        self.namespace = namespace
        self.early_expiry_seconds = early_expiry_seconds
        self.cache = cache if cache is not None else django_cache
        self._remembered: dict[str, AccessToken] = {}
        self._lock = threading.Lock()

    def key(self, *credential_parts: str) -> str:
        digest = hashlib.sha256("\x1f".join(credential_parts).encode()).hexdigest()
        return f"cohortsync:token:{self.namespace}:{digest}"

    def get(self, key: str) -> AccessToken | None:
        with self._lock:
            token = self._remembered.get(key)
        if token is None or not self._usable(token):
            stored = self.cache.get(key)
            if not stored:
                return None
            token = AccessToken(**stored)
            if not self._usable(token):
                return None
            with self._lock:
                self._remembered[key] = token
        return token

    def put(self, key: str, value: str, expires_in: float, extra: dict[str, Any] | None = None) -> AccessToken:
        token = AccessToken(value=value, expires_at=time.time() + expires_in, extra=extra or {})
        ttl = max(1, int(expires_in - self.early_expiry_seconds))
        self.cache.set(key, {"value": token.value, "expires_at": token.expires_at, "extra": token.extra}, ttl)
        with self._lock:
            self._remembered[key] = token
        return token

    def drop(self, key: str) -> None:
        with self._lock:
            self._remembered.pop(key, None)
        self.cache.delete(key)

    def _usable(self, token: AccessToken) -> bool:
        return token.expires_at - self.early_expiry_seconds > time.time()
