"""Normalise what people paste into destination settings, or say exactly what is wrong.

Used by the admin form, `manage.py apply` and the clients alike, so every entry point
accepts and rejects the same things. Each kind's settings and their normalisers are in its
KindSpec (destinations.kinds); this module holds what they share. URLs are read by
destinations.url_policy, the policy the HTTP transport applies at request time, so a URL
saved here is one requests may use.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from destinations.errors import EndpointNotAllowedError
from destinations.url_policy import ParsedUrl, ensure_url_allowed, url_parse

if TYPE_CHECKING:
    from destinations.kindspec import SettingField

# "scheme:" not followed by a port number: 'https://...', 'https:/...', 'mailto:...' are
# read as written; 'host' and 'host:8765/path' get https:// in front.
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:(?![0-9])")


class SettingError(ValueError):
    """A destination setting that cannot be used; the message says how to fix it."""


def url_setting_parse(url: str) -> ParsedUrl:
    """url_policy's strict reading, its refusal as a SettingError."""
    try:
        return url_parse(url)
    except EndpointNotAllowedError as exc:
        raise SettingError(exc.message) from None


def with_scheme(raw: str) -> str:
    """`raw` as written when it names a scheme, else with https:// in front."""
    return raw if _SCHEME_RE.match(raw) else f"https://{raw}"


def setting_clean(setting: SettingField, value: str) -> str:
    """The value to store for one kind setting (already stripped; "" when empty), or
    SettingError: normalised, its default when empty, and a URL checked against the URL
    policy. Whether an empty required setting is an error is the caller's to say."""
    if not value:
        return setting.default
    if setting.normalize is not None:
        value = setting.normalize(value)
    if setting.is_url and value:
        try:
            ensure_url_allowed(value)
        except EndpointNotAllowedError as exc:
            raise SettingError(exc.message) from None
    return value or setting.default


def validate_destination_options(kind: str, options: Any) -> dict[str, Any]:
    """Check Destination.options for `kind`: its known keys only, numbers within bounds."""
    from destinations.kinds import kind_spec
    from destinations.kindspec import UnknownKindError

    try:
        spec = kind_spec(kind)
    except UnknownKindError as exc:
        raise SettingError(str(exc)) from None
    return spec.options.clean(options)
