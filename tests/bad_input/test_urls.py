"""The SSRF/URL corpus and the redirect corpus (issue 10, items 1 and 2).

Every hostile URL is refused where it is saved (admin form and `apply`, with a specific
message naming the field), and when it is forced into the database past validation, neither
*Test connection* nor a run opens a socket: a loopback listener the URL points at receives
nothing, and no connection is attempted anywhere else either.

Redirects are never followed: a 3xx from a token or data endpoint of either client, or from
the sandbox inspection page's emulator, is an error naming the refused host, and the
listener at the Location receives nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import urllib3.util.connection
from django.core.cache.backends.locmem import LocMemCache
from django.test import override_settings
from django.urls import reverse

from destinations.errors import EndpointNotAllowedError, RedirectRefusedError, error_retriable
from destinations.http import RetryPolicy, TokenCache
from destinations.marketo.client import MarketoClient
from destinations.models import Destination
from destinations.sfmc.client import SfmcClient
from destinations.url_policy import REDIRECT_REFUSED
from syncs.config_as_code import config_apply
from syncs.models import RunStatus
from tests.bad_input.listeners import Listener, ScriptedHttpServer
from tests.destinations.configs import config_of
from tests.factories import DestinationFactory, ProfileFactory, SyncFactory
from tests.syncs.fakes import run_now

pytestmark = pytest.mark.django_db

SECRET = "Sup3r-s3cret-client-value"
ADD = reverse("admin:destinations_destination_add")

# What each refusal says (a fragment of the message).
BACKSLASH = "contains a backslash"
USERINFO = "Remove the user name and password"
PERCENT = "percent-encoding"
WHITESPACE = "whitespace or a control character"
NON_ASCII = "non-ASCII characters"
FRAGMENT = "has a fragment"
TRAILING_DOT = "ends with a dot"
EMPTY_LABEL = "has an empty part"
BAD_LABEL = "is not a valid host name"
NUMERIC = "resolvers read as an IP address"
BAD_PORT = "is not a number from 1 to 65535"
SCHEME = "only https:// and http:// are allowed"
NO_SCHEME = "must start with https://"
NOT_ALLOWED = "only https on the official hosts"
BAD_IPV6 = "is not a valid IPv6 address"
NOT_A_URL_CHAR = "which a URL cannot contain"


@dataclass(frozen=True)
class Hostile:
    url: str  # "{port}" is the listener's port
    message: str

    def at(self, port: int) -> str:
        return self.url.replace("{port}", str(port))


CORPUS: dict[str, Hostile] = {
    # The two reproductions of issue 10, item 1 (the listener stands in for 8769).
    "backslash-marketo-metadata": Hostile("https://169.254.169.254\\.mktorest.com", BACKSLASH),
    "backslash-before-userinfo": Hostile("https://127.0.0.1:{port}\\@x.auth.marketingcloudapis.com", BACKSLASH),
    "backslash-before-suffix": Hostile("https://127.0.0.1:{port}\\.mktorest.com", BACKSLASH),
    "backslash-as-slashes": Hostile("https:\\\\127.0.0.1:{port}\\x.mktorest.com", BACKSLASH),
    "backslash-after-official-host": Hostile("https://x.mktorest.com\\@127.0.0.1:{port}", BACKSLASH),
    "userinfo-official-name": Hostile("https://x.mktorest.com@127.0.0.1:{port}", USERINFO),
    "userinfo-password": Hostile("https://user:hunter2@x.rest.marketingcloudapis.com", USERINFO),
    "userinfo-empty": Hostile("https://@127.0.0.1:{port}", USERINFO),
    "percent-dot": Hostile("https://127.0.0.1%2emktorest.com", PERCENT),
    "percent-colon": Hostile("https://127.0.0.1%3a{port}.mktorest.com", PERCENT),
    "percent-backslash": Hostile("https://127.0.0.1:{port}%5c.mktorest.com", PERCENT),
    "percent-nul": Hostile("https://x.mktorest.com%00.127.0.0.1.nip.io", PERCENT),
    "tab-in-host": Hostile("https://127.0.0.1:{port}\t.mktorest.com", WHITESPACE),
    "newline-in-host": Hostile("https://127.0.0.1:{port}\r\n.mktorest.com", WHITESPACE),
    "space-in-host": Hostile("https://127.0.0.1:{port} .mktorest.com", WHITESPACE),
    "idna-accented": Hostile("https://mkto-é.mktorest.com", NON_ASCII),
    "idna-fullwidth-dot": Hostile("https://127.0.0.1\uff0emktorest.com", NON_ASCII),
    "idna-ideographic-dot": Hostile("https://x.mktorest.com\u3002evil.net", NON_ASCII),
    "fragment-at": Hostile("https://x.mktorest.com#@127.0.0.1:{port}", FRAGMENT),
    "trailing-dot": Hostile("https://123-abc-456.mktorest.com.", TRAILING_DOT),
    "empty-label": Hostile("https://x..mktorest.com", EMPTY_LABEL),
    "leading-dot": Hostile("https://.mktorest.com", EMPTY_LABEL),
    "hyphen-label": Hostile("https://-x.mktorest.com", BAD_LABEL),
    "label-too-long": Hostile("https://" + "a" * 64 + ".mktorest.com", BAD_LABEL),
    "quote-in-host": Hostile("https://x.mktorest.com\"@127.0.0.1:{port}", NOT_A_URL_CHAR),
    "decimal-ip": Hostile("https://2130706433:{port}", NUMERIC),
    "short-ip": Hostile("https://127.1:{port}", NUMERIC),
    "hex-ip": Hostile("https://0x7f000001:{port}", NUMERIC),
    "octal-ip": Hostile("https://0177.0.0.1:{port}", NUMERIC),
    "port-zero": Hostile("https://x.mktorest.com:0", BAD_PORT),
    "port-too-big": Hostile("https://x.mktorest.com:99999", BAD_PORT),
    "port-signed": Hostile("https://x.mktorest.com:+443", BAD_PORT),
    "port-empty": Hostile("https://x.mktorest.com:", BAD_PORT),
    "port-twice": Hostile("https://x.mktorest.com:443:{port}", BAD_PORT),
    "port-suffix": Hostile("https://127.0.0.1:{port};.mktorest.com", BAD_PORT),
    "bad-ipv6": Hostile("https://[127.0.0.1]:{port}", BAD_IPV6),
    "scheme-ftp": Hostile("ftp://x.mktorest.com", SCHEME),
    "scheme-file": Hostile("file:///etc/passwd", SCHEME),
    "scheme-gopher": Hostile("gopher://127.0.0.1:{port}/_POST", SCHEME),
    "one-slash": Hostile("https:/127.0.0.1:{port}", NO_SCHEME),
    "http-official": Hostile("http://x.mktorest.com", NOT_ALLOWED),
    "suffix-trick": Hostile("https://x.mktorest.com.127.0.0.1.nip.io", NOT_ALLOWED),
    "loopback": Hostile("http://127.0.0.1:{port}", NOT_ALLOWED),
    "loopback-ipv6": Hostile("https://[::1]:{port}", NOT_ALLOWED),
    "mapped-ipv6": Hostile("https://[::ffff:127.0.0.1]:{port}", NOT_ALLOWED),
    "metadata": Hostile("http://169.254.169.254/latest/meta-data", NOT_ALLOWED),
    "localhost": Hostile("https://localhost:{port}", NOT_ALLOWED),
    "path-suffix": Hostile("https://127.0.0.1:{port}/.mktorest.com", NOT_ALLOWED),
}


@dataclass(frozen=True)
class UrlField:
    """A destination setting that holds a URL, and how to fill it for its kind."""

    name: str
    kind: str

    def form(self, url: str) -> dict[str, str]:
        data = {
            "name": "Hostile",
            "kind": self.kind,
            "subdomain": "mc-test-tenant",
            "account_id": "",
            "auth_base_url": "",
            "data_extension_key": "COHORTS_DE",
            "key_column": "SubscriberKey",
            "attribute_set": "",
            "base_url": "",
            "client_id": "client-id",
            "new_client_secret": SECRET,
            "options": "{}",
            "_save": "Save",
        }
        data[self.name] = url
        return data

    def entry(self, url: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": "Hostile", "kind": self.kind, "client_id": "client-id",
                                 "client_secret": SECRET, self.name: url}
        if self.kind != "marketo":
            entry.update(subdomain="mc-test-tenant", data_extension_key="COHORTS_DE",
                         key_column="SubscriberKey")
        return entry

    def destination(self) -> Destination:
        if self.kind == "marketo":
            return DestinationFactory(marketo=True, client_secret=SECRET)
        return DestinationFactory(client_secret=SECRET)


FIELDS = {
    "sfmc-auth_base_url": UrlField("auth_base_url", "sfmc_data_extension"),
    "marketo-base_url": UrlField("base_url", "marketo"),
}


@pytest.fixture(params=list(CORPUS), ids=list(CORPUS))
def hostile(request: pytest.FixtureRequest) -> Hostile:
    return CORPUS[request.param]


@pytest.fixture(params=list(FIELDS), ids=list(FIELDS))
def url_field(request: pytest.FixtureRequest) -> UrlField:
    return FIELDS[request.param]


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every connection requests/urllib3 attempts. Loopback goes through (so the listener
    sees what would have been sent); anything else fails at once instead of leaving."""
    attempted: list[tuple[str, int]] = []
    real = urllib3.util.connection.create_connection

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> Any:
        attempted.append(address)
        if address[0] in ("127.0.0.1", "localhost"):
            return real(address, *args, **kwargs)
        raise OSError("the URL corpus forbids leaving this machine")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)
    return attempted


@pytest.fixture
def no_extra_hosts() -> Iterator[None]:
    with override_settings(COHORTSYNC_ALLOWED_API_HOSTS=[]):
        yield


def field_errors(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 200, "expected the form to be shown again with errors"
    return {name: list(errors) for name, errors in response.context["adminform"].form.errors.items()}


# --- Save time ---------------------------------------------------------------------------


def test_the_admin_form_refuses_it_on_the_field(admin_client, no_extra_hosts, hostile, url_field, listener):
    response = admin_client.post(ADD, url_field.form(hostile.at(listener.port)))

    errors = field_errors(response)
    assert hostile.message in " ".join(errors.get(url_field.name, [])), errors
    assert not Destination.objects.exists()
    assert SECRET not in response.content.decode()
    assert "hunter2" not in str(errors)


def test_apply_refuses_it_naming_the_entry_and_field(no_extra_hosts, hostile, url_field, listener):
    document = {"destinations": [url_field.entry(hostile.at(listener.port))]}

    report = config_apply(document=document, environ={}, dry_run=False)

    assert not report.ok
    prefix = f'destinations[0] "Hostile": {url_field.name}: '
    assert any(e.startswith(prefix) and hostile.message in e for e in report.errors), report.errors
    assert "hunter2" not in " ".join(report.errors)
    assert not Destination.objects.exists()


# --- Request time, with the URL forced into the database ------------------------------------


def forced(url_field: UrlField, url: str) -> Destination:
    destination = url_field.destination()
    Destination.objects.filter(pk=destination.pk).update(**{url_field.name: url})
    return Destination.objects.get(pk=destination.pk)


def test_test_connection_opens_no_socket(admin_client, no_extra_hosts, hostile, url_field, listener, connections):
    destination = forced(url_field, hostile.at(listener.port))

    admin_client.post(reverse("admin:destinations_destination_test_connection", args=[destination.pk]))

    destination.refresh_from_db()
    assert (listener.received, connections) == ([], [])
    assert destination.is_connected is False
    assert hostile.message in destination.connection_error
    assert SECRET not in destination.connection_error


def test_a_run_opens_no_socket(no_extra_hosts, hostile, url_field, listener, connections):
    destination = forced(url_field, hostile.at(listener.port))
    sync = SyncFactory(destination=destination)
    ProfileFactory(properties={"$email": "ada@example.com", "plan": "pro"})

    run = run_now(sync)

    assert (listener.received, connections) == ([], [])
    assert run.status == RunStatus.FAILED
    assert hostile.message in run.error_message
    assert SECRET not in run.error_message


# --- The reproductions of item 1, step by step ------------------------------------------------


def test_apply_no_longer_saves_a_marketo_url_whose_host_ends_at_a_backslash(no_extra_hosts):
    document = {"destinations": [FIELDS["marketo-base_url"].entry("https://169.254.169.254\\.mktorest.com")]}

    report = config_apply(document=document, environ={}, dry_run=False)

    assert report.errors == [
        'destinations[0] "Hostile": base_url: The URL contains a backslash (\\), which HTTP '
        "libraries read as the end of the host: requests would connect to 169.254.169.254."
    ]


def test_the_admin_no_longer_saves_an_sfmc_auth_url_that_would_send_the_secret_elsewhere(
    admin_client, no_extra_hosts, listener, connections
):
    url = f"https://127.0.0.1:{listener.port}\\@x.auth.marketingcloudapis.com"

    response = admin_client.post(ADD, FIELDS["sfmc-auth_base_url"].form(url))

    assert field_errors(response)["auth_base_url"] == [
        "The URL contains a backslash (\\), which HTTP libraries read as the end of the host: "
        f"requests would connect to 127.0.0.1:{listener.port}."
    ]
    # Forced in anyway, Test connection sends the client id and secret nowhere.
    destination = forced(FIELDS["sfmc-auth_base_url"], url)
    admin_client.post(reverse("admin:destinations_destination_test_connection", args=[destination.pk]))
    assert (listener.received, connections) == ([], [])


@pytest.mark.parametrize(
    ("subdomain", "message"),
    [
        ("127.0.0.1:{port}\\@x", BACKSLASH),
        ("mc\\x", "only letters, digits and hyphens"),
        ("https://127.0.0.1:{port}\\@mcx.auth.marketingcloudapis.com", BACKSLASH),
        ("https://mcx.auth.marketingcloudapis.com@127.0.0.1:{port}/", USERINFO),
        ("mcx.auth.marketingcloudapis.com.127.0.0.1.nip.io", "not an SFMC subdomain"),
    ],
)
def test_a_hostile_subdomain_is_refused_and_opens_no_socket(
    admin_client, no_extra_hosts, listener, connections, subdomain, message
):
    subdomain = subdomain.replace("{port}", str(listener.port))
    field = FIELDS["sfmc-auth_base_url"]

    response = admin_client.post(ADD, {**field.form(""), "subdomain": subdomain})
    report = config_apply(document={"destinations": [{**field.entry(""), "subdomain": subdomain}]},
                          environ={}, dry_run=True)
    destination = DestinationFactory(client_secret=SECRET)
    Destination.objects.filter(pk=destination.pk).update(subdomain=subdomain)
    admin_client.post(reverse("admin:destinations_destination_test_connection", args=[destination.pk]))

    assert message in field_errors(response)["subdomain"][0]
    assert any("subdomain: " in e and message in e for e in report.errors), report.errors
    assert (listener.received, connections) == ([], [])
    destination.refresh_from_db()
    assert destination.is_connected is False


# --- What a destination answers is checked too ------------------------------------------------


@pytest.mark.parametrize(
    ("instance", "message"),
    [
        ("https://127.0.0.1:{port}\\.rest.marketingcloudapis.com/", BACKSLASH),
        ("127.0.0.1:{port}\\@mcx.rest.marketingcloudapis.com", BACKSLASH),
        ("https://mcx.rest.marketingcloudapis.com@127.0.0.1:{port}/", USERINFO),
        ("http://127.0.0.1:{port}/", NOT_ALLOWED),
    ],
)
def test_a_rest_instance_url_from_the_token_endpoint_is_held_to_the_same_policy(
    server, listener, connections, instance, message
):
    server.script("POST", "/sfmc/auth/v2/token", 200, headers={"Content-Type": "application/json"},
                  body=json_body({"access_token": "tok-sfmc", "expires_in": 1079,
                                  "rest_instance_url": instance.replace("{port}", str(listener.port))}))

    # The token endpoint itself is allowed (the scripted server); its REST instance is not.
    with override_settings(COHORTSYNC_ALLOWED_API_HOSTS=[f"127.0.0.1:{server.port}"]):
        with pytest.raises(EndpointNotAllowedError, match=message):
            sfmc_client(server).data_extension_id("DE")

    assert listener.received == []
    assert connections == [("127.0.0.1", server.port)]


# --- Redirects --------------------------------------------------------------------------------

REDIRECTS = [301, 302, 303, 307, 308]


@pytest.fixture
def server() -> Iterator[ScriptedHttpServer]:
    scripted = ScriptedHttpServer()
    yield scripted
    scripted.close()


def stolen(listener: Listener) -> dict[str, str]:
    # The location carries a query with a token: the error must name the host, nothing more.
    return {"Location": f"http://127.0.0.1:{listener.port}/stolen?token=tok-in-the-location"}


def sfmc_client(server: ScriptedHttpServer) -> SfmcClient:
    config = config_of(
        "sfmc_data_extension", name="redirected", client_id="client-id",
        client_secret=SECRET, auth_base_url=f"{server.base}/sfmc/auth", data_extension_key="DE",
        key_column="SubscriberKey",
    )
    return SfmcClient(config, sleep=lambda s: None, retry=RetryPolicy(max_attempts=3),
                      token_cache=TokenCache(namespace="sfmc", cache=LocMemCache("redirect-sfmc", {})))


def marketo_client(server: ScriptedHttpServer) -> MarketoClient:
    return MarketoClient(base_url=f"{server.base}/marketo", client_id="client-id", client_secret=SECRET,
                         sleep=lambda s: None,
                         token_cache=TokenCache(namespace="marketo", cache=LocMemCache("redirect-mkto", {})))


def json_body(value: Any) -> bytes:
    return json.dumps(value).encode()


def sfmc_token(server: ScriptedHttpServer) -> None:
    server.script("POST", "/sfmc/auth/v2/token", 200, headers={"Content-Type": "application/json"},
                  body=json_body({"access_token": "tok-sfmc", "expires_in": 1079,
                                  "rest_instance_url": f"{server.base}/sfmc/rest/"}))


def marketo_token(server: ScriptedHttpServer) -> None:
    server.script("POST", "/marketo/identity/oauth/token", 200,
                  headers={"Content-Type": "application/json"},
                  body=json_body({"access_token": "tok-mkto", "expires_in": 3600}))


# (client, endpoint): the path that redirects, how to set up what comes before it, the call.
REDIRECT_CASES = {
    "sfmc-token": ("POST", "/sfmc/auth/v2/token", None,
                   lambda server: sfmc_client(server).access_token()),
    "sfmc-rowset": ("POST", "/sfmc/rest/hub/v1/dataevents/key:DE/rowset", sfmc_token,
                    lambda server: sfmc_client(server).rowset_upsert(
                        "DE", [{"keys": {"SubscriberKey": "ada@example.com"}, "values": {"C": True}}])),
    "marketo-identity": ("POST", "/marketo/identity/oauth/token", None,
                         lambda server: marketo_client(server).access_token()),
    "marketo-leads": ("POST", "/marketo/rest/v1/leads.json", marketo_token,
                      lambda server: marketo_client(server).sync_leads(records=[{"email": "ada@example.com"}])),
}


@pytest.mark.parametrize("status", REDIRECTS)
@pytest.mark.parametrize("case", list(REDIRECT_CASES))
def test_a_redirect_is_never_followed(server, listener, case, status):
    method, path, before, call = REDIRECT_CASES[case]
    if before is not None:
        before(server)
    server.script(method, path, status, headers=stolen(listener))

    with pytest.raises(RedirectRefusedError) as caught:
        call(server)

    assert listener.received == []
    assert caught.value.code == REDIRECT_REFUSED
    assert not error_retriable(caught.value)
    message = str(caught.value)
    assert f"127.0.0.1:{listener.port}" in message
    assert f"HTTP {status}" in message
    for leaked in ("tok-in-the-location", "stolen", SECRET, "tok-sfmc", "tok-mkto"):
        assert leaked not in message
    assert server.paths().count(path) == 1, "a refused redirect is not retried"


@pytest.mark.parametrize("kind", ["sfmc_data_extension", "marketo"])
def test_test_connection_reports_the_refused_redirect(admin_client, server, listener, kind):
    if kind == "marketo":
        destination = DestinationFactory(marketo=True, base_url=f"{server.base}/marketo")
        server.script("POST", "/marketo/identity/oauth/token", 307, headers=stolen(listener))
    else:
        destination = DestinationFactory(auth_base_url=f"{server.base}/sfmc/auth")
        server.script("POST", "/sfmc/auth/v2/token", 307, headers=stolen(listener))

    admin_client.post(reverse("admin:destinations_destination_test_connection", args=[destination.pk]))

    destination.refresh_from_db()
    assert listener.received == []
    assert destination.is_connected is False
    assert f"a redirect to 127.0.0.1:{listener.port}" in destination.connection_error
    assert "[redirect_refused]" in destination.connection_error


@pytest.mark.parametrize("status", REDIRECTS)
def test_the_sandbox_inspection_page_does_not_follow_a_redirect(admin_client, server, listener, status):
    destination = DestinationFactory(auth_base_url=f"{server.base}/sfmc/auth")
    server.script("GET", "/sfmc/_sandbox/state", status, headers=stolen(listener))

    response = admin_client.get(reverse("admin:destinations_destination_sandbox_state", args=[destination.pk]))

    html = response.content.decode()
    assert response.status_code == 200
    assert listener.received == []
    assert f"a redirect to 127.0.0.1:{listener.port}" in html
    assert "tok-in-the-location" not in html
