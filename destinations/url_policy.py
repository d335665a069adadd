"""The one URL policy for every outbound request CohortSync makes.

What is checked is exactly what is connected to. HTTP libraries do not all read a URL the
same way (urllib.parse ends the host at "@", urllib3 at a backslash; urllib.parse drops tabs
that urllib3 refuses), so a check that reads the host with one parser while requests
connects with another can be walked around. This policy reads URLs strictly and refuses
anything that two parsers could read differently, then compares its reading with
urllib.parse and with urllib3's `parse_url` (which requests uses) and refuses any
disagreement.

Refused, each with a message that says why (and never echoes user info, query or fragment):
- anything but http:// and https://;
- whitespace or control characters, non-ASCII characters (an international host name is
  accepted in its ASCII xn-- form), backslashes and characters URLs cannot contain;
- user info (`user:password@host`), percent-encoding in the host, a fragment (`#...`);
- host names with an empty label (`a..b`, `.a`), a trailing dot, or a label that is not
  letters, digits, hyphens and underscores (at most 63, no hyphen at either end);
- numeric hosts other than a canonical dotted IPv4 address (`127.1`, `2130706433`,
  `0x7f.0.0.1`, `0177.0.0.1`: resolvers read them as addresses), invalid IPv6 literals;
- a port that is not a plain number from 1 to 65535, or an empty port.

A syntactically sound URL is then allowed when its host is in `allowed_hosts` (http or
https; `host` for any port, `host:port` for one port), or when it is https and
`https_host_allowed(host)` says yes.

Entry points (all raise destinations.errors.EndpointNotAllowedError, with `code` one of
URL_MALFORMED or URL_NOT_ALLOWED):

- `url_parse(url)`: the syntax check alone; returns a ParsedUrl. The save-time normalisers
  in destinations.validation use it.
- `url_check(url, *, allowed_hosts, https_host_allowed, advice=...)`: syntax, then the
  allow-list. Another kind of outbound call brings its own allow-list, e.g. alert webhooks
  (https to any public host name, plus hosts an operator lists):

      url_check(url, allowed_hosts=hosts_setting(settings.COHORTSYNC_ALLOWED_ALERT_HOSTS),
                https_host_allowed=is_public_host_name,
                advice="webhooks need https to a public host name; list other hosts in "
                       "COHORTSYNC_ALLOWED_ALERT_HOSTS.")

- `ensure_url_allowed(url, *, extra_hosts=None)`: the destination API policy: https on the
  official SFMC and Marketo API hosts, or a host in COHORTSYNC_ALLOWED_API_HOSTS (or in
  `extra_hosts` when given). destinations.http's transport applies it to exactly the URL it
  hands to requests, and the admin form and `apply` apply it when a URL is saved.
- `redirect_refused(...)`: the error for a 3xx answer. Redirects are never followed (the
  target would escape every check above); the error names the refused location's host.

The policy checks names, not addresses: it cannot know what a public name resolves to. A
caller that must never reach a private address through DNS has to check the connected
peer's address as well.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import NoReturn
from urllib.parse import urljoin, urlsplit

from django.conf import settings
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from destinations.errors import EndpointNotAllowedError, RedirectRefusedError

# Stored, public error codes.
URL_MALFORMED = "url_malformed"
URL_NOT_ALLOWED = "endpoint_not_allowed"
REDIRECT_REFUSED = "redirect_refused"



def official_host_suffixes() -> tuple[str, ...]:
    """Every destination kind's official API hosts (each kind's spec names its own)."""
    from destinations.kinds import official_host_suffixes as suffixes

    return suffixes()


@lru_cache(maxsize=1)
def api_hosts_advice() -> str:
    shown = ", ".join(f"*{suffix}" for suffix in official_host_suffixes())
    return (
        f"only https on the official hosts ({shown}) is allowed. To use another host (a sandbox "
        "or a proxy), add it to COHORTSYNC_ALLOWED_API_HOSTS."
    )


NOT_A_URL = "This is not a URL CohortSync can call"
# RFC 3986's characters; anything else is either ambiguous or needs percent-encoding.
_URL_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:/?#[]@!$&'()*+,;=%"
)
_URL_RE = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):(?P<slashes>//)?(?P<rest>.*)", re.DOTALL)
_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# A last label a resolver reads as part of a number: decimal, octal (leading 0) or hex.
_NUMERIC_LABEL_RE = re.compile(r"0x[0-9a-f]*|[0-9]+")
_PORT_RE = re.compile(r"[0-9]{1,5}")
MAX_HOST_LENGTH = 253
# Names that only mean something inside a network (RFC 6761, RFC 6762, RFC 8375 and common
# private conventions): never a public host.
_PRIVATE_NAME_SUFFIXES = (
    ".localhost", ".local", ".localdomain", ".internal", ".intranet", ".lan", ".home",
    ".corp", ".private", ".home.arpa", ".arpa", ".test", ".example", ".invalid", ".onion",
)
_SHOWN_LENGTH = 80


@dataclass(frozen=True)
class ParsedUrl:
    """A URL that passed the syntax check, read the way requests will connect to it."""

    scheme: str  # "http" or "https"
    netloc: str  # as written (case kept), without user info
    host: str  # lower case; an IPv6 address keeps its brackets
    port: int | None
    path: str
    query: str

    @property
    def authority(self) -> str:
        """host[:port], lower case: how messages and allow-lists name the endpoint."""
        return f"{self.host}:{self.port}" if self.port is not None else self.host


def url_parse(url: str) -> ParsedUrl:
    """Read `url` strictly, or raise EndpointNotAllowedError(code=URL_MALFORMED) saying why."""
    if not isinstance(url, str):
        _malformed(f"{NOT_A_URL}: it is not text.")
    return _url_parse(url)


# A run requests the same few URLs thousands of times, and urllib3's parser is the costly
# part of the check (~0.1 ms); refusals are not cached (an exception is never stored).
@lru_cache(maxsize=512)
def _url_parse(url: str) -> ParsedUrl:
    _check_characters(url)
    match = _URL_RE.fullmatch(url)
    if match is None:
        _malformed(f"{NOT_A_URL}: it must start with https:// (or http:// for a host in the allow-list).")
    scheme = match["scheme"].lower()
    if scheme not in ("http", "https"):
        _malformed(f"{NOT_A_URL}: only https:// and http:// are allowed, not {_shown(scheme)}://.")
    if not match["slashes"]:
        _malformed(f"{NOT_A_URL}: it must start with {scheme}:// followed by the host.")
    rest = match["rest"]
    if "#" in rest:
        _malformed("The URL has a fragment (#...); an API URL never needs one.")
    netloc, path, query = _split_rest(rest)
    if "@" in netloc:
        _malformed(
            "Remove the user name and password from the URL (user@host): credentials go in the "
            "client id and client secret fields, never in the URL."
        )
    host, port = _host_and_port(netloc)
    parsed = ParsedUrl(scheme=scheme, netloc=netloc, host=host, port=port, path=path, query=query)
    _compare_with_http_libraries(url, parsed)
    return parsed


def url_check(
    url: str,
    *,
    allowed_hosts: Iterable[str],
    https_host_allowed: Callable[[str], bool],
    advice: str = "this host is not allowed.",
) -> ParsedUrl:
    """The syntax check, then: host in `allowed_hosts` (http/https), or https and
    `https_host_allowed(host)`. `advice` ends the refusal: say what is allowed and which
    setting allows more."""
    parsed = url_parse(url)
    allowed = hosts_setting(allowed_hosts)
    if parsed.host in allowed or (parsed.port is not None and parsed.authority in allowed):
        return parsed
    if parsed.scheme == "https" and https_host_allowed(parsed.host):
        return parsed
    raise EndpointNotAllowedError(
        f"Refusing to contact {parsed.scheme}://{_shown(parsed.authority)}: {advice}",
        code=URL_NOT_ALLOWED,
    )


def ensure_url_allowed(url: str, *, extra_hosts: Iterable[str] | None = None) -> None:
    """Raise EndpointNotAllowedError unless a destination client may contact `url`.

    Official hosts need https. Hosts in COHORTSYNC_ALLOWED_API_HOSTS (or `extra_hosts`;
    "host" for any port, "host:port" for one) may use http or https.
    """
    url_check(
        url,
        allowed_hosts=settings.COHORTSYNC_ALLOWED_API_HOSTS if extra_hosts is None else extra_hosts,
        https_host_allowed=is_official_api_host,
        advice=api_hosts_advice(),
    )


def hosts_setting(entries: Iterable[str]) -> frozenset[str]:
    """An allow-list setting ("host" or "host:port" entries) in the form url_check compares."""
    return _hosts_setting(tuple(entries))


@lru_cache(maxsize=16)
def _hosts_setting(entries: tuple[str, ...]) -> frozenset[str]:
    hosts = set()
    for entry in entries:
        entry = entry.strip().lower()
        if entry.count(":") > 1 and not entry.startswith("["):
            entry = f"[{entry}]"  # a bare IPv6 address
        if entry:
            hosts.add(entry)
    return frozenset(hosts)


def is_official_api_host(host: str) -> bool:
    """A host under one of the official SFMC or Marketo API domains (a checked, lower-case host)."""
    return host.endswith(official_host_suffixes())


def is_public_host_name(host: str) -> bool:
    """A DNS name that can only mean a host on the internet (a checked, lower-case host):
    not an IP address, not a single label such as "localhost" or "redis", not a name
    reserved for private or special use (.local, .internal, .localhost, .test, ...)."""
    if host.startswith("[") or "." not in host:
        return False
    if _NUMERIC_LABEL_RE.fullmatch(host.rsplit(".", 1)[1]):
        return False
    return not f".{host}".endswith(_PRIVATE_NAME_SUFFIXES)


def redirect_refused(*, status: int, location: str | None, url: str) -> RedirectRefusedError:
    """The error for a 3xx answer to a request for `url`: redirects are never followed."""
    target = _location_host(location, url)
    where = f"to {_shown(target)}" if target else "without a usable location"
    return RedirectRefusedError(
        f"{_shown(_authority_of(url))} answered HTTP {status}, a redirect {where}. CohortSync never "
        "follows redirects, so nothing was sent there: point the destination at the host that "
        "serves the API.",
        code=REDIRECT_REFUSED,
        status=status,
    )


# --- the strict reading -------------------------------------------------------------------


def _malformed(message: str) -> NoReturn:
    raise EndpointNotAllowedError(message, code=URL_MALFORMED)


def _check_characters(url: str) -> None:
    if not url:
        _malformed(f"{NOT_A_URL}: it is empty.")
    if url.isascii() and set(url) <= _URL_CHARACTERS:
        return
    for char in url:
        if char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F:
            _malformed("The URL contains whitespace or a control character.")
    if "\\" in url:
        connects_to = _urllib3_authority(url)
        _malformed(
            "The URL contains a backslash (\\), which HTTP libraries read as the end of the host"
            + (f": requests would connect to {_shown(connects_to)}." if connects_to else ".")
        )
    if not url.isascii():
        _malformed(
            "The URL contains non-ASCII characters: write an international host name in its "
            "ASCII form (xn--...)."
        )
    char = next(c for c in url if c not in _URL_CHARACTERS)
    _malformed(f"The URL contains {char!r}, which a URL cannot contain.")


def _split_rest(rest: str) -> tuple[str, str, str]:
    """'host:port/path?query' -> (netloc, path, query)."""
    end = len(rest)
    for separator in "/?":
        position = rest.find(separator)
        if position != -1:
            end = min(end, position)
    netloc, tail = rest[:end], rest[end:]
    path, _, query = tail.partition("?")
    return netloc, path, query


def _host_and_port(netloc: str) -> tuple[str, int | None]:
    if "%" in netloc:
        _malformed("The URL's host contains percent-encoding (%): write the host name plainly.")
    if netloc.startswith("["):
        closing = netloc.find("]")
        host, port_text = netloc[: closing + 1], netloc[closing + 1:]
        if closing == -1 or (port_text and not port_text.startswith(":")):
            _malformed(f"The host {_shown(netloc)} is not a valid IPv6 address in brackets.")
        host = _ipv6_host(host.lower())
    else:
        host, colon, port_text = netloc.partition(":")
        port_text = colon + port_text
        host = _host_name(host.lower())
    port = None
    if port_text:
        digits = port_text[1:]
        if not _PORT_RE.fullmatch(digits) or not 1 <= int(digits) <= 65535:
            _malformed(f"{NOT_A_URL}: its port {_shown(digits)!r} is not a number from 1 to 65535.")
        port = int(digits)
    return host, port


def _ipv6_host(bracketed: str) -> str:
    try:
        address = ipaddress.IPv6Address(bracketed[1:-1])
    except ValueError:
        _malformed(f"The host {_shown(bracketed)} is not a valid IPv6 address.")
    return f"[{address.compressed}]"


def _host_name(host: str) -> str:
    if not host:
        _malformed(f"{NOT_A_URL}: it has no host.")
    if len(host) > MAX_HOST_LENGTH:
        _malformed(f"The host name is longer than {MAX_HOST_LENGTH} characters.")
    if host.endswith("."):
        _malformed(f"The host {_shown(host)} ends with a dot: remove the trailing dot.")
    labels = host.split(".")
    if "" in labels:
        _malformed(
            f"The host {_shown(host)} has an empty part (two dots in a row, or a leading dot)."
        )
    if _NUMERIC_LABEL_RE.fullmatch(labels[-1]):
        try:
            canonical = str(ipaddress.IPv4Address(host)) == host
        except ValueError:
            canonical = False
        if not canonical:
            _malformed(
                f"The host {_shown(host)} is a number that resolvers read as an IP address: write "
                "an address as four decimal numbers, e.g. 192.0.2.10."
            )
        return host
    for label in labels:
        if not _LABEL_RE.fullmatch(label):
            _malformed(
                f"The host {_shown(host)} is not a valid host name: each part between dots has "
                "letters, digits, hyphens or underscores (at most 63), and no hyphen at either end."
            )
    return host


def _compare_with_http_libraries(url: str, parsed: ParsedUrl) -> None:
    """Refuse unless urllib.parse and urllib3 (requests) read the same scheme, host and port."""
    readings: list[tuple[str, str, int | None]] = []
    try:
        split = urlsplit(url)
        split_host = split.hostname or ""
        readings.append((split.scheme, f"[{split_host}]" if ":" in split_host else split_host, split.port))
        requests_reading = parse_url(url)
        readings.append((
            (requests_reading.scheme or "").lower(), (requests_reading.host or "").lower(),
            requests_reading.port,
        ))
    except (ValueError, LocationParseError):
        _malformed(f"{NOT_A_URL}: an HTTP library cannot read it.")
    expected = (parsed.scheme, parsed.host, parsed.port)
    for scheme, host, port in readings:
        if host.startswith("["):
            host = _ipv6_host(host)
        if (scheme, host, port) != expected:
            _malformed(
                f"URL parsers read this URL's host differently ({_shown(parsed.authority)} or "
                f"{_shown(host)}{'' if port is None else f':{port}'}), so it is refused."
            )


# --- names for messages --------------------------------------------------------------------


def _urllib3_authority(url: str) -> str:
    try:
        parsed = parse_url(url)
    except (ValueError, LocationParseError):
        return ""
    if not parsed.host:
        return ""
    return f"{parsed.host}:{parsed.port}" if parsed.port else parsed.host


def _authority_of(url: str) -> str:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "?"
    if not host:
        return "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port is not None else host


def _location_host(location: str | None, url: str) -> str:
    if not location:
        return ""
    try:
        target = urljoin(url, location.strip())
    except ValueError:
        return ""
    authority = _authority_of(target)
    return "" if authority == "?" else authority


def _shown(text: str) -> str:
    """User input as it may appear in a message: printable and short."""
    printable = "".join(c if c.isprintable() else "?" for c in text)
    if len(printable) > _SHOWN_LENGTH:
        printable = printable[: _SHOWN_LENGTH - 1] + "…"
    return printable
