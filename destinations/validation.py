"""Normalise what people paste into destination settings, or say exactly what is wrong.

Used by the admin forms, `manage.py apply` and the clients alike, so every entry point
accepts and rejects the same things.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

SUBDOMAIN_RE = re.compile(r"^[A-Za-z0-9-]+$")
_SFMC_HOST_RE = re.compile(
    r"^(?P<sub>[A-Za-z0-9-]+)\.(?:auth|rest|soap)\.marketingcloudapis\.com$", re.IGNORECASE
)
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
        host = urlsplit(raw if "://" in raw else f"https://{raw}").hostname or ""
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


def normalize_marketo_base_url(value: str) -> str:
    """Strip a pasted '/rest', '/identity' or '/bulk' (and anything after it) and trailing
    slashes; a bare host gets https://.

    Any other path prefix is kept (a proxy may mount Marketo under one).
    """
    raw = (value or "").strip()
    if not raw:
        raise SettingError(
            "Enter the Marketo REST endpoint from Admin > Web Services, e.g. "
            "https://123-ABC-456.mktorest.com."
        )
    parts = urlsplit(raw if "://" in raw else f"https://{raw}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a non-numeric port
    except ValueError:
        parts = parts._replace(netloc="")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingError(
            f"'{raw}' is not a URL. Enter the REST endpoint from Admin > Web Services, e.g. "
            "https://123-ABC-456.mktorest.com."
        )
    if parts.username or parts.password:
        # The URL is stored in plain text; credentials belong in client id / secret.
        raise SettingError(
            "Remove the user name and password from the URL: Marketo credentials go in the "
            "client id and client secret fields."
        )
    path = parts.path.rstrip("/")
    match = _MARKETO_API_SEGMENT_RE.search(path)
    if match:
        path = path[: match.start()]
    return f"{parts.scheme}://{parts.netloc}{path}"


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
