"""The settings, options and hosts of an SFMC account, shared by both SFMC kinds."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from destinations.kindspec import Fieldset, KindOptions, SandboxDescription, SettingField, bounded
from destinations.validation import SettingError, url_setting_parse

SUBDOMAIN_RE = re.compile(r"^[A-Za-z0-9-]+$")
_SFMC_HOST_RE = re.compile(
    r"^(?P<sub>[A-Za-z0-9-]+)\.(?:auth|rest|soap)\.marketingcloudapis\.com$", re.IGNORECASE
)
# Pasted token URLs are trimmed to the auth base URL (lower case: compared case-insensitively).
SFMC_TOKEN_PATHS = ("/v2/token", "/v1/requesttoken")
OFFICIAL_HOSTS = (".auth.marketingcloudapis.com", ".rest.marketingcloudapis.com")
DEFAULT_INTERVAL_MINUTES = 15
# The seed documents' default: the profile's distinct id is the subscriber or contact key.
DEFAULT_IDENTITY = "$distinct_id"


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
        host = url_setting_parse(raw if "://" in raw else f"https://{raw}").host
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
    parsed = url_setting_parse(url)
    if parsed.query:
        raise SettingError(
            "Remove the query (?...) from the auth base URL: it ends at the path, e.g. "
            "https://mcXXXX.auth.marketingcloudapis.com."
        )
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path}"


def validate_sfmc_account_id(value: str) -> str:
    value = (value or "").strip()
    if value and not value.isdigit():
        raise SettingError(f"'{value}' is not a MID: the account id of a business unit is a number.")
    return value


def sfmc_api_url(settings: Mapping[str, str]) -> str:
    """The auth base URL the SFMC client contacts first (as stored; "" when unset)."""
    if settings.get("auth_base_url"):
        return settings["auth_base_url"]
    if settings.get("subdomain"):
        return f"https://{settings['subdomain']}.auth.marketingcloudapis.com"
    return ""


def sfmc_account_key(settings: Mapping[str, str]) -> str:
    """The SFMC tenant (its auth URL, however it was written) and business unit (MID)."""
    try:
        tenant = normalize_sfmc_auth_base_url(sfmc_api_url(settings))
    except SettingError:
        tenant = sfmc_api_url(settings)
    return f"sfmc:{tenant.lower()}|{(settings.get('account_id') or '').strip()}"


def sfmc_account_label(settings: Mapping[str, str]) -> str:
    tenant = (settings.get("subdomain") or "").strip() or urlsplit(sfmc_api_url(settings)).netloc
    account = f"the SFMC account {tenant}"
    mid = (settings.get("account_id") or "").strip()
    return f"{account} (MID {mid})" if mid else account


SUBDOMAIN = SettingField(
    name="subdomain",
    label="Subdomain",
    help="The tenant subdomain from Setup > Apps > Installed Packages, e.g. "
    "'mc563885gzs27c5t9-63k636ttgm'. A pasted URL such as "
    "https://mcXXXX.auth.marketingcloudapis.com/ is reduced to it.",
    required_message="Enter the SFMC subdomain (Setup > Apps > Installed Packages > your package).",
    normalize=normalize_sfmc_subdomain,
)
ACCOUNT_ID = SettingField(
    name="account_id",
    label="Account id (MID)",
    help="Optional MID of the business unit to write to (Setup > Business Units, or under the "
    "account name at the top right). Empty uses the business unit that owns the installed "
    "package.",
    normalize=validate_sfmc_account_id,
)
AUTH_BASE_URL = SettingField(
    name="auth_base_url",
    label="Auth base URL",
    help="Optional. Leave empty for https://{subdomain}.auth.marketingcloudapis.com; set it "
    "only for a sandbox or a proxy listed in COHORTSYNC_ALLOWED_API_HOSTS.",
    normalize=normalize_sfmc_auth_base_url,
    is_url=True,
)
SETTINGS = (SUBDOMAIN, ACCOUNT_ID, AUTH_BASE_URL)
FIELDSET = Fieldset(
    title="Salesforce Marketing Cloud",
    description="Create an installed package with a server-to-server API integration (Setup > "
    "Apps > Installed Packages) with read and write access to data extensions (and contacts "
    "for the contacts kind).",
    fields=("subdomain", "account_id", "auth_base_url"),
)
CREDENTIALS_HELP = (
    "SFMC: Setup > Apps > Installed Packages > your package > API Integration (server-to-server)."
)
SANDBOX = SandboxDescription(
    platform="SFMC",
    url_setting="auth_base_url",
    url_suffix="/sfmc/auth",
    state_prefix="/sfmc",
    tables="destinations.sandbox.inspect.sfmc_tables",
)


@dataclass(frozen=True)
class SfmcOptions(KindOptions):
    """The options of the SFMC client, shared by both SFMC kinds (the maxima are sanity caps:
    SFMC publishes no hard limits for them)."""

    requests_per_second: float = bounded(20.0, 0.1, 1000)
    max_concurrency: int = bounded(4, 1, 32)

    budget_fields: ClassVar[tuple[str, ...]] = ("requests_per_second", "max_concurrency")


# What the specs of every SFMC kind take from the account they write to
# (KindSpec(kind=..., **ACCOUNT_SPEC, ...)).
ACCOUNT_SPEC: dict[str, Any] = {
    "official_hosts": OFFICIAL_HOSTS,
    "default_interval_minutes": DEFAULT_INTERVAL_MINUTES,
    "default_identity": DEFAULT_IDENTITY,
    "api_url": sfmc_api_url,
    "sandbox": SANDBOX,
    "credentials_help": CREDENTIALS_HELP,
    "account_key": sfmc_account_key,
}
