"""The settings, options and hosts of a Marketo instance, shared by the Marketo kinds."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from destinations.kindspec import (
    DailyQuota,
    Fieldset,
    KindOptions,
    QuotaDay,
    SandboxDescription,
    SettingField,
    bounded,
)
from destinations.validation import SettingError, url_setting_parse, with_scheme

# A pasted Marketo URL ends at the host (or a proxy prefix) before one of these segments.
_MARKETO_API_SEGMENT_RE = re.compile(r"/(?:rest|identity|bulk)(?:/|$)", re.IGNORECASE)
OFFICIAL_HOSTS = (".mktorest.com",)
# Marketo's daily quota makes a sync every 2 hours the seeds' cadence.
DEFAULT_INTERVAL_MINUTES = 120
# Leads are matched by email.
DEFAULT_IDENTITY = "$email"
# Marketo's daily API quota resets at midnight in this zone.
QUOTA_TIMEZONE = "America/Chicago"


def quota_zone() -> dt.tzinfo:
    try:
        return ZoneInfo(QUOTA_TIMEZONE)
    except ZoneInfoNotFoundError:  # no tz database on this host: Adobe documents CST
        return dt.timezone(dt.timedelta(hours=-6), "CST")


def quota_resets_at(now: dt.datetime) -> dt.datetime:
    """The next midnight in America/Chicago, when Marketo's daily quota resets (as UTC)."""
    zone = quota_zone()
    next_day = (now.astimezone(zone) + dt.timedelta(days=1)).date()
    midnight = dt.datetime.combine(next_day, dt.time(0, 0), tzinfo=zone)
    return midnight.astimezone(dt.UTC)


def quota_day(now: dt.datetime) -> QuotaDay:
    """The Marketo day a call made at `now` counts toward (a calendar day in America/Chicago)."""
    return QuotaDay(day=now.astimezone(quota_zone()).date().isoformat(), resets_at=quota_resets_at(now))


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
    parsed = url_setting_parse(with_scheme(raw))
    path = parsed.path.rstrip("/")
    match = _MARKETO_API_SEGMENT_RE.search(path)
    if match:
        path = path[: match.start()]
    return f"{parsed.scheme}://{parsed.netloc}{path}"


def marketo_api_url(settings: Mapping[str, str]) -> str:
    return settings.get("base_url", "")


def marketo_instance(settings: Mapping[str, str]) -> str:
    """The instance's REST host, as written."""
    url = (settings.get("base_url") or "").strip()
    try:
        return urlsplit(url).netloc or url
    except ValueError:  # a stored URL urlsplit refuses ("https://[127.0.0.1]"): as written
        return url


def marketo_account_key(settings: Mapping[str, str]) -> str:
    return f"marketo:{marketo_instance(settings).lower()}"


@dataclass(frozen=True)
class MarketoOptions(KindOptions):
    """Marketo's limits are per instance and shared by every integration: Adobe advises at
    most 50 calls per 20 s and 5 concurrent calls per integration (of 100 and 10)."""

    calls_per_20s: int = bounded(50, 1, 100)
    max_concurrency: int = bounded(5, 1, 10)
    # Records per lead-database call: 300 at most.
    batch_size: int = bounded(300, 1, 300)
    # Runs with more changes than this go through bulk import.
    bulk_threshold: int = bounded(50_000, 1, 100_000_000)
    # Calls a day (Marketo's default subscription quota; Adobe raises it on request). A run
    # stops before the call that would cross it, and resumes after midnight America/Chicago.
    daily_call_quota: int = bounded(50_000, 1, 100_000_000)

    budget_fields: ClassVar[tuple[str, ...]] = ("calls_per_20s", "max_concurrency", "daily_call_quota")


BASE_URL = SettingField(
    name="base_url",
    label="REST endpoint",
    help="Marketo REST endpoint without /rest, e.g. https://123-ABC-456.mktorest.com (Admin > "
    "Web Services).",
    required_message="Enter the Marketo REST endpoint from Admin > Web Services.",
    normalize=normalize_marketo_base_url,
    is_url=True,
)
FIELDSET = Fieldset(
    title="Marketo",
    description="Create a custom service for an API-only user (Admin > LaunchPoint) with "
    "read-write access to leads. Leads are matched by email and created when missing.",
    fields=("base_url",),
)
CREDENTIALS_HELP = "Marketo: Admin > LaunchPoint > your service > View Details."
SANDBOX = SandboxDescription(
    platform="Marketo",
    url_setting="base_url",
    url_suffix="/marketo",
    state_prefix="/marketo",
    tables="destinations.sandbox.inspect.marketo_tables",
)


# What the specs of every Marketo kind take from the account they write to
# (KindSpec(kind=..., **ACCOUNT_SPEC, ...)).
ACCOUNT_SPEC: dict[str, Any] = {
    "official_hosts": OFFICIAL_HOSTS,
    "default_interval_minutes": DEFAULT_INTERVAL_MINUTES,
    "default_identity": DEFAULT_IDENTITY,
    "api_url": marketo_api_url,
    "sandbox": SANDBOX,
    "credentials_help": CREDENTIALS_HELP,
    "account_key": marketo_account_key,
    "daily_quota": DailyQuota(option="daily_call_quota", day=quota_day),
}
