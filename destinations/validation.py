"""Normalise what people paste into destination settings, or say exactly what is wrong.

Used by the admin forms, `manage.py apply` and the clients alike, so every entry point
accepts and rejects the same things.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

SUBDOMAIN_RE = re.compile(r"^[A-Za-z0-9-]+$")
_SFMC_HOST_RE = re.compile(
    r"^(?P<sub>[A-Za-z0-9-]+)\.(?:auth|rest|soap)\.marketingcloudapis\.com$", re.IGNORECASE
)
_MARKETO_API_SUFFIXES = ("/rest", "/identity", "/bulk")


class SettingError(ValueError):
    """A destination setting that cannot be used; the message says how to fix it."""


def normalize_sfmc_subdomain(value: str) -> str:
    """'mcABC' or a pasted 'https://mcABC.auth.marketingcloudapis.com/...' -> 'mcABC'."""
    raw = (value or "").strip()
    if not raw:
        raise SettingError("Enter the SFMC subdomain (Setup > Apps > Installed Packages).")
    candidate = raw
    if "://" in raw or "." in raw or "/" in raw:
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
    """Strip a pasted '/rest' or '/identity' (and anything after it) and trailing slashes.

    Any other path prefix is kept (a proxy may mount Marketo under one).
    """
    raw = (value or "").strip()
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingError(
            f"'{raw}' is not a URL. Enter the REST endpoint from Admin > Web Services, e.g. "
            "https://123-ABC-456.mktorest.com."
        )
    path = parts.path.rstrip("/")
    lowered = path.lower()
    for suffix in _MARKETO_API_SUFFIXES:
        index = lowered.find(suffix)
        if index != -1 and (len(lowered) == index + len(suffix) or lowered[index + len(suffix)] == "/"):
            path = path[:index]
            break
    return f"{parts.scheme}://{parts.netloc}{path}"


def validate_sfmc_account_id(value: str) -> str:
    value = (value or "").strip()
    if value and not value.isdigit():
        raise SettingError(f"'{value}' is not a MID: the account id of a business unit is a number.")
    return value
