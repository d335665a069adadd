"""destinations.url_policy on its own: what it accepts, and the allow-list other callers bring.

The hostile URLs themselves are the corpus in tests/bad_input/test_urls.py.
"""

from __future__ import annotations

import pytest
from django.test import override_settings

from destinations import url_policy
from destinations.errors import EndpointNotAllowedError
from destinations.url_policy import (
    URL_MALFORMED,
    URL_NOT_ALLOWED,
    ensure_url_allowed,
    is_public_host_name,
    url_check,
    url_parse,
)


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "path", "query"),
    [
        ("https://mc123.auth.marketingcloudapis.com/v2/token", "https", "mc123.auth.marketingcloudapis.com",
         None, "/v2/token", ""),
        ("HTTPS://123-ABC-456.MKTOREST.COM:443/rest?x=1", "https", "123-abc-456.mktorest.com", 443,
         "/rest", "x=1"),
        ("http://127.0.0.1:8765/marketo", "http", "127.0.0.1", 8765, "/marketo", ""),
        ("http://[::1]:8765/sfmc/auth", "http", "[::1]", 8765, "/sfmc/auth", ""),
        ("http://[0:0::1]/x", "http", "[::1]", None, "/x", ""),
        ("https://xn--bcher-kva.mktorest.com", "https", "xn--bcher-kva.mktorest.com", None, "", ""),
        ("http://cohortsync_sandbox:8765/sfmc/auth", "http", "cohortsync_sandbox", 8765, "/sfmc/auth", ""),
        ("https://x.mktorest.com/rest/v1/leads/batch/12%2F3.json", "https", "x.mktorest.com", None,
         "/rest/v1/leads/batch/12%2F3.json", ""),
    ],
)
def test_sound_urls_are_read_as_requests_will_connect(url, scheme, host, port, path, query):
    parsed = url_parse(url)

    assert (parsed.scheme, parsed.host, parsed.port, parsed.path, parsed.query) == (
        scheme, host, port, path, query,
    )


def test_the_netloc_keeps_its_case_for_normalised_settings():
    assert url_parse("https://123-ABC-456.mktorest.com/rest").netloc == "123-ABC-456.mktorest.com"


def test_a_disagreement_between_parsers_is_refused(monkeypatch):
    class Elsewhere:
        scheme, host, port = "https", "169.254.169.254", None

    monkeypatch.setattr(url_policy, "parse_url", lambda url: Elsewhere)
    url_policy._url_parse.cache_clear()  # a reading from an earlier test would be reused

    with pytest.raises(EndpointNotAllowedError, match="read this URL's host differently") as excinfo:
        url_parse("https://x.mktorest.com/rest")

    assert excinfo.value.code == URL_MALFORMED
    assert "169.254.169.254" in excinfo.value.message


def test_refusals_never_echo_user_info_or_the_query():
    for url in ("https://user:hunter2@x.mktorest.com", "https://x.mktorest.com\\?token=hunter2",
                "https://evil.example/?token=hunter2"):
        with pytest.raises(EndpointNotAllowedError) as excinfo:
            ensure_url_allowed(url)
        assert "hunter2" not in str(excinfo.value)


@override_settings(COHORTSYNC_ALLOWED_API_HOSTS=["::1", "[::2]:8765", "Sandbox.Internal"])
def test_allow_list_entries_are_case_insensitive_and_take_ipv6_addresses():
    ensure_url_allowed("http://[::1]:9000/x")
    ensure_url_allowed("http://[::2]:8765/x")
    ensure_url_allowed("https://sandbox.internal/x")
    with pytest.raises(EndpointNotAllowedError) as excinfo:
        ensure_url_allowed("http://[::2]:8766/x")
    assert excinfo.value.code == URL_NOT_ALLOWED


def test_extra_hosts_replace_the_setting():
    ensure_url_allowed("http://proxy.example:3128/x", extra_hosts=["proxy.example:3128"])
    with pytest.raises(EndpointNotAllowedError):
        ensure_url_allowed("http://127.0.0.1/x", extra_hosts=[])


# --- Another caller's allow-list: alert webhooks --------------------------------------------


def webhook_check(url: str, allowed: list[str]) -> None:
    url_check(url, allowed_hosts=allowed, https_host_allowed=is_public_host_name,
              advice="webhooks need https to a public host; list others in COHORTSYNC_ALLOWED_ALERT_HOSTS.")


@pytest.mark.parametrize(
    "url",
    ["https://hooks.slack.com/services/T0/B0/x", "https://example.com/hook", "http://alerts.internal:8080/hook"],
)
def test_a_webhook_policy_allows_public_https_and_listed_hosts(url):
    webhook_check(url, ["alerts.internal"])


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.slack.com/services/x", "COHORTSYNC_ALLOWED_ALERT_HOSTS"),
        ("https://localhost/hook", "COHORTSYNC_ALLOWED_ALERT_HOSTS"),
        ("https://redis:6379/", "COHORTSYNC_ALLOWED_ALERT_HOSTS"),
        ("https://10.0.0.5/hook", "COHORTSYNC_ALLOWED_ALERT_HOSTS"),
        ("https://[::1]/hook", "COHORTSYNC_ALLOWED_ALERT_HOSTS"),
        ("https://metadata.google.internal/computeMetadata", "COHORTSYNC_ALLOWED_ALERT_HOSTS"),
        ("https://printer.local/", "COHORTSYNC_ALLOWED_ALERT_HOSTS"),
        ("https://2130706433/hook", "read as an IP address"),
        ("https://hooks.slack.com\\@127.0.0.1/", "backslash"),
        ("https://hooks.slack.com./services", "ends with a dot"),
    ],
)
def test_a_webhook_policy_refuses_private_and_ambiguous_hosts(url, message):
    with pytest.raises(EndpointNotAllowedError, match=message):
        webhook_check(url, ["alerts.internal"])


@pytest.mark.parametrize(
    ("host", "public"),
    [
        ("hooks.slack.com", True),
        ("example.co.uk", True),
        ("localhost", False),
        ("app.localhost", False),
        ("redis", False),
        ("127.0.0.1", False),
        ("[::1]", False),
        ("svc.cluster.internal", False),
        ("nas.home.arpa", False),
        ("my.test", False),
    ],
)
def test_public_host_names(host, public):
    assert is_public_host_name(host) is public
