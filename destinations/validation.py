"""Normalise what people paste into destination settings, or say exactly what is wrong.

Used by the admin forms, `manage.py apply` and the clients alike, so every entry point
accepts and rejects the same things. URLs are read by destinations.url_policy, the policy the
HTTP transport applies at request time, so a URL saved here is one requests may use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from destinations.errors import EndpointNotAllowedError
from destinations.url_policy import ParsedUrl, url_parse

SUBDOMAIN_RE = re.compile(r"^[A-Za-z0-9-]+$")
_SFMC_HOST_RE = re.compile(
    r"^(?P<sub>[A-Za-z0-9-]+)\.(?:auth|rest|soap)\.marketingcloudapis\.com$", re.IGNORECASE
)
# "scheme:" not followed by a port number: 'https://...', 'https:/...', 'mailto:...' are
# read as written; 'host' and 'host:8765/path' get https:// in front.
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?![0-9])")
# Pasted token URLs are trimmed to the auth base URL (lower case: compared case-insensitively).
SFMC_TOKEN_PATHS = ("/v2/token", "/v1/requesttoken")
# A pasted Marketo URL ends at the host (or a proxy prefix) before one of these segments.
_MARKETO_API_SEGMENT_RE = re.compile(r"/(?:rest|identity|bulk)(?:/|$)", re.IGNORECASE)


class SettingError(ValueError):
    """A destination setting that cannot be used; the message says how to fix it."""


def normalize_sfmc_subdomain(value: str) -> str:
    """'mcABC' or a pasted 'https://mcABC.auth.marketingcloudapis.com/...' -> 'mcABC'."""
    raw = (value or "").strip()
    if not raw:
        raise SettingError("Enter the SFMC subdomain (Setup > Apps > Installed Packages).")
    candidate = raw
    if "://" not in raw and "." not in raw:
        # 'mcABC/' is a subdomain with copy-paste noise, not a URL.
        candidate = raw.rstrip("/")
    if "://" in candidate or "." in candidate or "/" in candidate:
        host = _parsed(raw if "://" in raw else f"https://{raw}").host
        match = _SFMC_HOST_RE.match(host)
        if not match:
            raise SettingError(
                f"'{raw}' is not an SFMC subdomain or API URL. Enter only the subdomain, e.g. "
                "'mc563885gzs27c5t9-63k636ttgm' from https://mc563885gzs27c5t9-63k636ttgm"
                ".auth.marketingcloudapis.com/."
            )
        candidate = match.group("sub")
    if not SUBDOMAIN_RE.match(candidate):
        raise SettingError(
            f"'{raw}' is not a valid SFMC subdomain: use only letters, digits and hyphens."
        )
    return candidate


def normalize_sfmc_auth_base_url(value: str) -> str:
    """'' (use the subdomain's auth URL), or the auth base URL with a pasted token path
    ('/v2/token', '/v1/requestToken') and trailing slashes removed.

    The URL must pass destinations.url_policy's syntax check; whether its host may be
    contacted is ensure_url_allowed's question.
    """
    raw = (value or "").strip()
    if not raw:
        return ""
    url = raw.rstrip("/")
    for token_path in SFMC_TOKEN_PATHS:
        if url.lower().endswith(token_path):
            url = url[: -len(token_path)].rstrip("/")
    parsed = _parsed(url)
    if parsed.query:
        raise SettingError(
            "Remove the query (?...) from the auth base URL: it ends at the path, e.g. "
            "https://mcXXXX.auth.marketingcloudapis.com."
        )
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path}"


def normalize_marketo_base_url(value: str) -> str:
    """Strip a pasted '/rest', '/identity' or '/bulk' (and anything after it) and trailing
    slashes; a bare host gets https://.

    Any other path prefix is kept (a proxy may mount Marketo under one). The URL must pass
    destinations.url_policy's syntax check.
    """
    raw = (value or "").strip()
    if not raw:
        raise SettingError(
            "Enter the Marketo REST endpoint from Admin > Web Services, e.g. "
            "https://123-ABC-456.mktorest.com."
        )
    parsed = _parsed(raw if _SCHEME_RE.match(raw) else f"https://{raw}")
    path = parsed.path.rstrip("/")
    match = _MARKETO_API_SEGMENT_RE.search(path)
    if match:
        path = path[: match.start()]
    return f"{parsed.scheme}://{parsed.netloc}{path}"


def _parsed(url: str) -> ParsedUrl:
    """url_policy's strict reading, its refusal as a SettingError."""
    try:
        return url_parse(url)
    except EndpointNotAllowedError as exc:
        raise SettingError(exc.message) from None


def validate_sfmc_account_id(value: str) -> str:
    value = (value or "").strip()
    if value and not value.isdigit():
        raise SettingError(f"'{value}' is not a MID: the account id of a business unit is a number.")
    return value


# Destination.options: the tuning knobs each platform understands, with their bounds.
# (type, minimum, maximum); the maxima are the platforms' documented hard limits where
# they exist and generous sanity caps otherwise.
_SFMC_OPTIONS: dict[str, tuple[type, float, float]] = {
    "requests_per_second": (float, 0.1, 1000),
    "max_concurrency": (int, 1, 32),
    "rowset_batch_size": (int, 1, 200),
    "async_threshold": (int, 0, 100_000_000),
    "async_batch_size": (int, 1, 32_000),
}
_MARKETO_OPTIONS: dict[str, tuple[type, float, float]] = {
    "calls_per_20s": (int, 1, 100),
    "max_concurrency": (int, 1, 10),
    "batch_size": (int, 1, 300),
    "bulk_threshold": (int, 1, 100_000_000),
}
DESTINATION_OPTIONS: dict[str, dict[str, tuple[type, float, float]]] = {
    "sfmc_data_extension": _SFMC_OPTIONS,
    "sfmc_contacts": _SFMC_OPTIONS,
    "marketo": _MARKETO_OPTIONS,
}


def validate_destination_options(kind: str, options: Any) -> dict[str, Any]:
    """Check Destination.options for `kind`: known keys only, numbers within bounds."""
    if options in (None, ""):
        return {}
    if not isinstance(options, Mapping):
        raise SettingError('Options must be a JSON object, e.g. {"max_concurrency": 2}.')
    known = DESTINATION_OPTIONS.get(kind)
    if known is None:
        raise SettingError(f"Unknown destination kind '{kind}'.")
    cleaned: dict[str, Any] = {}
    for key, value in options.items():
        if key not in known:
            raise SettingError(
                f"Unknown option '{key}' for this destination. Known options: "
                f"{', '.join(sorted(known))}."
            )
        expected, minimum, maximum = known[key]
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if not is_number or (expected is int and not float(value).is_integer()):
            kind_word = "a whole number" if expected is int else "a number"
            raise SettingError(f"Option '{key}' must be {kind_word}, not {value!r}.")
        if not minimum <= value <= maximum:
            raise SettingError(
                f"Option '{key}' must be between {minimum:g} and {maximum:g}, not {value!r}."
            )
        cleaned[key] = int(value) if expected is int else float(value)
    return cleaned
