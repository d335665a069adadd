"""The shared HTTP transport: allowed hosts, retries, throttling, rate limits, tokens."""

from __future__ import annotations

import email.utils
import logging
from types import SimpleNamespace

import pytest
import requests
import responses
from django.core.cache.backends.locmem import LocMemCache
from django.test import override_settings

from destinations import http
from destinations.errors import (
    DestinationError,
    EndpointNotAllowedError,
    PermanentError,
    RateLimitedError,
    RedirectRefusedError,
    TransientError,
    error_retriable,
)
from destinations.http import (
    MAX_RETRY_AFTER_SECONDS,
    HttpTransport,
    RetryPolicy,
    TokenCache,
    TokenExpiredError,
    ensure_url_allowed,
    parse_retry_after,
)
from destinations.url_policy import REDIRECT_REFUSED, URL_MALFORMED, URL_NOT_ALLOWED

URL = "https://mc-test.rest.marketingcloudapis.com/data/v1/async/dataextensions/key:DE/rows"


class Sleeps(list):
    """A fake sleep that records how long the transport wanted to wait."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def transport(sleeps: Sleeps) -> HttpTransport:
    return HttpTransport(retry=RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=30), sleep=sleeps)


@pytest.fixture
def fixed_time(monkeypatch):
    """Freeze destinations.http's view of wall-clock time; returns a mutable [now]."""
    now = [1_800_000_000.0]
    fake = SimpleNamespace(time=lambda: now[0], monotonic=lambda: now[0], sleep=lambda s: None)
    monkeypatch.setattr(http, "time", fake)
    return now


# --- Retries -----------------------------------------------------------------------------


@responses.activate
def test_server_errors_are_retried_with_growing_backoff(transport, sleeps):
    responses.post(URL, status=500)
    responses.post(URL, status=502)
    responses.post(URL, status=503)
    responses.post(URL, json={"ok": True})

    response = transport.request("POST", URL, json={"items": []})

    assert response.json() == {"ok": True}
    assert transport.api_calls == 4
    # Full jitter within [ceiling/2, ceiling], the ceiling doubling per attempt.
    assert len(sleeps) == 3
    for delay, ceiling in zip(sleeps, (0.5, 1.0, 2.0), strict=True):
        assert ceiling / 2 <= delay <= ceiling


@responses.activate
def test_server_errors_give_up_after_max_attempts(transport, sleeps):
    for _ in range(4):
        responses.post(URL, status=500)

    with pytest.raises(TransientError) as excinfo:
        transport.request("POST", URL)

    assert excinfo.value.status == 500
    assert "server error (HTTP 500)" in str(excinfo.value)
    assert len(responses.calls) == 4
    assert len(sleeps) == 3


@responses.activate
def test_backoff_never_exceeds_max_delay(sleeps):
    transport = HttpTransport(retry=RetryPolicy(max_attempts=8, base_delay=1, max_delay=3), sleep=sleeps)
    for _ in range(7):
        responses.get(URL, status=500)
    responses.get(URL, json={})

    transport.request("GET", URL)

    assert max(sleeps) <= 3
    assert min(sleeps[2:]) >= 1.5


@responses.activate
def test_429_waits_the_seconds_in_retry_after(transport, sleeps):
    responses.post(URL, status=429, headers={"Retry-After": "7"})
    responses.post(URL, json={"ok": True})

    transport.request("POST", URL)

    assert sleeps == [7.0]


@responses.activate
def test_429_waits_until_the_http_date_in_retry_after(transport, sleeps, fixed_time):
    when = email.utils.formatdate(fixed_time[0] + 30, usegmt=True)
    responses.post(URL, status=429, headers={"Retry-After": when})
    responses.post(URL, json={"ok": True})

    transport.request("POST", URL)

    assert sleeps == [30.0]


@responses.activate
def test_429_without_retry_after_uses_backoff(transport, sleeps):
    responses.post(URL, status=429)
    responses.post(URL, json={"ok": True})

    transport.request("POST", URL)

    assert len(sleeps) == 1
    assert 0.25 <= sleeps[0] <= 0.5


@responses.activate
def test_429_with_a_retry_after_too_long_to_wait_is_raised_at_once(transport, sleeps):
    responses.post(URL, status=429, headers={"Retry-After": str(int(MAX_RETRY_AFTER_SECONDS) + 1)})

    with pytest.raises(RateLimitedError) as excinfo:
        transport.request("POST", URL)

    assert excinfo.value.retry_after == MAX_RETRY_AFTER_SECONDS + 1
    assert sleeps == []
    assert len(responses.calls) == 1


@pytest.mark.parametrize(
    ("header", "expected"),
    [("12", 12.0), (" 3.5 ", 3.5), ("-4", 0.0), ("", None), (None, None), ("soon", None)],
)
def test_parse_retry_after_seconds(header, expected):
    assert parse_retry_after(header) == expected


def test_parse_retry_after_date_in_the_past_is_zero(fixed_time):
    assert parse_retry_after(email.utils.formatdate(fixed_time[0] - 100, usegmt=True)) == 0.0


@responses.activate
def test_network_errors_are_retried(transport, sleeps):
    responses.get(URL, body=requests.ConnectionError("connection reset"))
    responses.get(URL, body=requests.ConnectTimeout("slow"))
    responses.get(URL, json={"ok": True})

    assert transport.request("GET", URL).json() == {"ok": True}
    assert len(sleeps) == 2


@responses.activate
def test_persistent_network_error_reports_host_without_query(transport):
    for _ in range(4):
        responses.get(URL, body=requests.ConnectionError("down"))

    with pytest.raises(TransientError) as excinfo:
        transport.request("GET", URL + "?access_token=tok-123")

    assert excinfo.value.code == "network_error"
    assert "mc-test.rest.marketingcloudapis.com" in str(excinfo.value)
    assert "tok-123" not in str(excinfo.value)


@responses.activate
def test_read_timeout_is_transient_with_its_own_code(transport):
    for _ in range(4):
        responses.get(URL, body=requests.ReadTimeout("slow"))

    with pytest.raises(TransientError) as excinfo:
        transport.request("GET", URL)

    assert excinfo.value.code == "timeout"


@responses.activate
def test_client_errors_are_returned_once_for_the_client_to_interpret(transport, sleeps):
    responses.post(URL, status=400, json={"message": "bad row"})

    response = transport.request("POST", URL)

    assert response.status_code == 400
    assert len(responses.calls) == 1
    assert sleeps == []


@responses.activate
def test_check_callback_transient_errors_are_retried(transport, sleeps):
    responses.post(URL, json={"errors": [{"code": "606"}]})
    responses.post(URL, json={"success": True})

    def check(response: requests.Response) -> None:
        if "errors" in response.json():
            raise RateLimitedError("Marketo rate limit (606).", code="606", retry_after=2)

    response = transport.request("POST", URL, check=check)

    assert response.json() == {"success": True}
    assert sleeps == [2]


@responses.activate
def test_check_callback_permanent_errors_are_raised_without_retry(transport, sleeps):
    responses.post(URL, json={"errors": [{"code": "1003"}]})
    responses.post(URL, json={"success": True})

    def check(response: requests.Response) -> None:
        raise PermanentError("Field Cohort_X does not exist.", code="1003")

    with pytest.raises(PermanentError, match="Cohort_X"):
        transport.request("POST", URL, check=check)

    assert len(responses.calls) == 1
    assert sleeps == []


@responses.activate
def test_expired_token_is_passed_straight_to_the_client(transport, sleeps):
    responses.get(URL, status=401)
    responses.get(URL, json={})

    def check(response: requests.Response) -> None:
        if response.status_code == 401:
            raise TokenExpiredError("Token expired.", code="401")

    with pytest.raises(TokenExpiredError):
        transport.request("GET", URL, check=check)

    assert len(responses.calls) == 1
    assert sleeps == []


@responses.activate
def test_retry_logs_never_contain_the_query_string(transport, caplog):
    responses.get(URL, status=500)
    responses.get(URL, json={})

    with caplog.at_level(logging.INFO, logger="destinations.http"):
        transport.request("GET", URL + "?client_secret=hunter2")

    assert "retrying" in caplog.text
    assert "hunter2" not in caplog.text


@responses.activate
def test_every_request_has_a_timeout(transport, settings):
    responses.get(URL, json={})

    transport.request("GET", URL)

    assert responses.calls[0].request.req_kwargs["timeout"] == (
        10.0,
        settings.COHORTSYNC_HTTP_TIMEOUT_SECONDS,
    )


@responses.activate
def test_api_calls_count_every_attempt_including_auth(transport):
    token_url = "https://mc-test.auth.marketingcloudapis.com/v2/token"
    responses.post(token_url, json={"access_token": "t"})
    responses.get(URL, status=500)
    responses.get(URL, json={})

    transport.request("POST", token_url)
    transport.request("GET", URL)

    assert transport.api_calls == 3


# --- Allowed hosts -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://mc123.auth.marketingcloudapis.com/v2/token",
        "https://mc123.rest.marketingcloudapis.com/hub/v1/dataevents",
        "https://123-ABC-456.mktorest.com/rest/v1/leads.json",
        "https://123-ABC-456.MKTOREST.COM/identity/oauth/token",
    ],
)
@override_settings(COHORTSYNC_ALLOWED_API_HOSTS=[])
def test_official_hosts_over_https_are_allowed(url):
    ensure_url_allowed(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://mc123.auth.marketingcloudapis.com/v2/token",
        "http://123-ABC-456.mktorest.com/rest/v1/leads.json",
        "https://mktorest.com/rest",
        "https://123-ABC-456.mktorest.com.attacker.net/rest",
        "https://evil.example.com/marketingcloudapis.com",
        "https://127.0.0.1:8765/sfmc/auth",
    ],
)
@override_settings(COHORTSYNC_ALLOWED_API_HOSTS=[])
def test_everything_else_is_refused_with_advice(url):
    with pytest.raises(EndpointNotAllowedError, match="COHORTSYNC_ALLOWED_API_HOSTS") as excinfo:
        ensure_url_allowed(url)
    assert excinfo.value.code == URL_NOT_ALLOWED


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://mc123.auth.marketingcloudapis.com/", "only https:// and http:// are allowed"),
        ("not a url", "whitespace"),
        ("mc123.auth.marketingcloudapis.com", "must start with https://"),
    ],
)
def test_what_is_not_an_http_url_is_refused_as_malformed(url, message):
    with pytest.raises(EndpointNotAllowedError, match=message) as excinfo:
        ensure_url_allowed(url)
    assert excinfo.value.code == URL_MALFORMED


@override_settings(COHORTSYNC_ALLOWED_API_HOSTS=["localhost", "sandbox.internal:8765"])
def test_allowed_hosts_without_port_match_any_port_and_with_port_only_that_port():
    ensure_url_allowed("http://localhost/marketo")
    ensure_url_allowed("http://localhost:9000/marketo")
    ensure_url_allowed("https://LOCALHOST:8443/sfmc/auth")
    ensure_url_allowed("http://sandbox.internal:8765/sfmc/auth")
    with pytest.raises(EndpointNotAllowedError, match="sandbox.internal:9999"):
        ensure_url_allowed("http://sandbox.internal:9999/sfmc/auth")
    with pytest.raises(EndpointNotAllowedError):
        ensure_url_allowed("http://sandbox.internal/sfmc/auth")


def test_refusal_message_names_the_host_but_not_the_query():
    with pytest.raises(EndpointNotAllowedError) as excinfo:
        ensure_url_allowed("https://attacker.example/rest?client_secret=hunter2")
    assert "attacker.example" in str(excinfo.value)
    assert "hunter2" not in str(excinfo.value)


@responses.activate
@override_settings(COHORTSYNC_ALLOWED_API_HOSTS=[])
def test_disallowed_host_is_refused_before_any_request(transport):
    responses.get("https://attacker.example/rest", json={})

    with pytest.raises(EndpointNotAllowedError):
        transport.request("GET", "https://attacker.example/rest")

    assert len(responses.calls) == 0
    assert transport.api_calls == 0


@responses.activate
def test_the_url_handed_to_requests_is_the_url_checked(transport):
    # urllib.parse reads the host as x.mktorest.com; requests would connect to 127.0.0.1.
    with pytest.raises(EndpointNotAllowedError, match="backslash"):
        transport.request("POST", "https://127.0.0.1:8769\\@x.mktorest.com/identity/oauth/token")

    assert len(responses.calls) == 0
    assert transport.api_calls == 0


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@responses.activate
def test_a_redirect_is_a_permanent_error_naming_the_refused_host(transport, sleeps, status):
    responses.post(URL, status=status, headers={"Location": "https://169.254.169.254:8080/x?token=t0k3n"})
    responses.post("https://169.254.169.254:8080/x", json={"stolen": True})
    responses.get("https://169.254.169.254:8080/x", json={"stolen": True})

    with pytest.raises(RedirectRefusedError) as excinfo:
        # Even a caller asking for redirects does not get them.
        transport.request("POST", URL + "?access_token=q5cret", allow_redirects=True)

    message = str(excinfo.value)
    assert excinfo.value.code == REDIRECT_REFUSED
    assert excinfo.value.status == status
    assert "a redirect to 169.254.169.254:8080" in message
    assert "mc-test.rest.marketingcloudapis.com answered HTTP" in message
    assert "t0k3n" not in message and "q5cret" not in message and "/x" not in message
    assert len(responses.calls) == 1
    assert sleeps == []


@responses.activate
def test_a_relative_redirect_names_the_same_host(transport):
    responses.get(URL, status=302, headers={"Location": "/elsewhere"})

    with pytest.raises(RedirectRefusedError, match="a redirect to mc-test.rest.marketingcloudapis.com"):
        transport.request("GET", URL)


@responses.activate
def test_a_redirect_without_a_location_is_refused_too(transport):
    responses.get(URL, status=301)

    with pytest.raises(RedirectRefusedError, match="without a usable location"):
        transport.request("GET", URL)


@responses.activate
def test_unexpected_request_exceptions_are_not_retried(transport, sleeps):
    responses.get(URL, body=requests.TooManyRedirects("loop"))

    with pytest.raises(DestinationError) as excinfo:
        transport.request("GET", URL)

    assert not error_retriable(excinfo.value)
    assert sleeps == []


def test_the_transport_reads_proxies_and_the_ca_bundle_once_per_host(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "example.mktorest.com")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/corporate-ca.pem")
    transport = HttpTransport()

    proxied = transport._environment_for("https://123-abc-456.mktorest.com/rest/v1/leads.json")
    bypassed = transport._environment_for("https://example.mktorest.com/identity/oauth/token")

    assert proxied["proxies"].get("https") == "http://proxy.internal:3128"
    assert "https" not in bypassed["proxies"]
    assert proxied["verify"] == "/etc/corporate-ca.pem"
    # Read once: later changes to the environment need a new transport (a new run).
    monkeypatch.setenv("HTTPS_PROXY", "http://other:3128")
    assert transport._environment_for("https://123-abc-456.mktorest.com/x")["proxies"]["https"].startswith(
        "http://proxy.internal")
    assert transport.session.trust_env is False


# --- TokenCache --------------------------------------------------------------------------


@pytest.fixture
def cache():
    return LocMemCache("destadmin-tokens", {})


def test_token_is_shared_between_cache_users(cache, fixed_time):
    writer = TokenCache(namespace="sfmc", cache=cache)
    reader = TokenCache(namespace="sfmc", cache=cache)
    key = writer.key("mc123", "client-id", "secret")

    writer.put(key, "token-1", expires_in=1080, extra={"rest_instance_url": "https://x/"})

    token = reader.get(key)
    assert token is not None
    assert token.value == "token-1"
    assert token.extra == {"rest_instance_url": "https://x/"}


def test_token_is_dropped_shortly_before_it_expires(cache, fixed_time):
    tokens = TokenCache(namespace="sfmc", early_expiry_seconds=60, cache=cache)
    key = tokens.key("client-id", "secret")
    tokens.put(key, "token-1", expires_in=1080)

    fixed_time[0] += 1080 - 61
    assert tokens.get(key) is not None
    fixed_time[0] += 2
    assert tokens.get(key) is None


def test_token_shorter_than_the_early_expiry_is_never_reused(cache, fixed_time):
    tokens = TokenCache(namespace="marketo", early_expiry_seconds=60, cache=cache)
    key = tokens.key("client-id")
    tokens.put(key, "short-lived", expires_in=30)

    assert tokens.get(key) is None


def test_dropped_token_is_gone(cache, fixed_time):
    tokens = TokenCache(namespace="marketo", cache=cache)
    key = tokens.key("client-id")
    tokens.put(key, "token-1", expires_in=3600)

    tokens.drop(key)

    assert tokens.get(key) is None


class _CountingCache(LocMemCache):
    def __init__(self) -> None:
        super().__init__("counting-tokens", {})
        self.reads = 0

    def get(self, *args, **kwargs):
        self.reads += 1
        return super().get(*args, **kwargs)


def test_a_remembered_token_is_not_read_from_the_shared_cache_per_request(fixed_time):
    shared = _CountingCache()
    tokens = TokenCache(namespace="sfmc", early_expiry_seconds=60, cache=shared)
    key = tokens.key("client-id", "secret")
    TokenCache(namespace="sfmc", cache=shared).put(key, "from-another-worker", expires_in=1080)

    values = {tokens.get(key).value for _ in range(500)}

    assert values == {"from-another-worker"}
    assert shared.reads == 1
    fixed_time[0] += 1080 - 59  # remembered token now inside the early-expiry window
    assert tokens.get(key) is None
    assert shared.reads == 2


def test_dropping_a_token_forgets_the_remembered_copy(cache, fixed_time):
    tokens = TokenCache(namespace="marketo", cache=cache)
    key = tokens.key("client-id")
    tokens.put(key, "refused-token", expires_in=3600)
    assert tokens.get(key).value == "refused-token"

    tokens.drop(key)

    assert tokens.get(key) is None


def test_cache_key_depends_on_credentials_and_never_contains_them():
    tokens = TokenCache(namespace="sfmc", cache=LocMemCache("k", {}))

    key = tokens.key("mc123", "client-id", "hunter2")

    assert "hunter2" not in key
    assert key != tokens.key("mc123", "client-id", "other-secret")
    assert key != TokenCache(namespace="marketo", cache=LocMemCache("k", {})).key(
        "mc123", "client-id", "hunter2"
    )
