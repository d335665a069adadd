"""The `alerts` section of `apply`: validate entries into plans, then write them.

An entry: name, channel ("webhook" or "email"), on (events), and for webhooks url (text or
{"env": "VAR"}; required when creating, kept when left out) and format ("json" or "slack"),
for email `to` (addresses). Optional: syncs and destinations (names; neither means all
syncs), min_failed_share, stale_after_intervals, enabled. Errors name the entry and the
field, never the URL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError

from alerts.forms import recipients_parse
from alerts.models import DEFAULT_STALE_AFTER_INTERVALS, AlertEvent, AlertRule
from alerts.webhooks import WebhookUrlRefused, webhook_url_check
from destinations.encryption import SecretDecryptionError
from destinations.models import Destination
from syncs.config_as_code.checks import (
    EntryErrors,
    entry_name,
    json_type,
    resolve_secret,
    unknown_keys,
)
from syncs.models import Sync

COMMON_KEYS = ("name", "channel", "on", "syncs", "destinations", "min_failed_share",
               "stale_after_intervals", "enabled")
CHANNEL_KEYS = {AlertRule.Channel.WEBHOOK: ("url", "format"), AlertRule.Channel.EMAIL: ("to",)}
ALL_CHANNEL_KEYS = ("url", "format", "to")
MAX_STALE_AFTER_INTERVALS = 1000
# Model fields under the names the document uses (what `apply` reports as changed).
DOCUMENT_NAMES = {"events": "on", "email_to": "to", "webhook_format": "format", "webhook_url": "url"}
MODEL_FIELDS = {name: model_field for model_field, name in DOCUMENT_NAMES.items()}


@dataclass
class AlertPlan:
    name: str
    existing: AlertRule | None
    values: dict[str, Any]
    webhook_url: str | None  # None keeps the stored one
    sync_names: list[str]
    destination_names: list[str]
    changed: list[str] = field(default_factory=list)


def plan_alerts(entries: list[Any], environ: Mapping[str, str], *, document_syncs: set[str],
                document_destinations: set[str], sink: list[str]) -> list[AlertPlan]:
    """`document_*`: names the document defines (valid or not), so a reference to one is never
    reported as missing; its own entry's errors say what is wrong with it."""
    plans: list[AlertPlan] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        errors = EntryErrors(sink, "alerts", index)
        name = entry_name(entry, errors, AlertRule, seen)
        if name is None:
            continue
        alert_plan = _plan_alert(entry, name, environ, errors, document_syncs, document_destinations)
        if alert_plan is not None and not errors.count:
            plans.append(alert_plan)
    return plans


def _plan_alert(entry: dict[str, Any], name: str, environ: Mapping[str, str], errors: EntryErrors,
                document_syncs: set[str], document_destinations: set[str]) -> AlertPlan | None:
    channel = entry.get("channel")
    if channel not in CHANNEL_KEYS:
        shown = "missing" if channel is None else repr(channel)
        errors.add("channel", f"must be one of {', '.join(CHANNEL_KEYS)} ({shown}).")
        return None
    allowed = (*COMMON_KEYS, *CHANNEL_KEYS[channel])
    for key in unknown_keys(entry, allowed):
        if key in ALL_CHANNEL_KEYS:
            errors.add(key, f"does not apply to {channel} alerts; remove it.")
        else:
            errors.add(key, f"unknown key. A {channel} alert takes: {', '.join(allowed)}.")

    existing = AlertRule.objects.filter(name=name).defer("webhook_url").first()
    values: dict[str, Any] = {
        "channel": channel,
        "events": _events(entry.get("on"), errors),
        "enabled": _boolean(entry, "enabled", errors),
        "min_failed_share": _share(entry.get("min_failed_share"), errors),
        "stale_after_intervals": _intervals(entry.get("stale_after_intervals"), errors),
        "email_to": [],
        "webhook_format": AlertRule.WebhookFormat.JSON,
    }
    webhook_url: str | None = None
    if channel == AlertRule.Channel.WEBHOOK:
        webhook_url = _webhook_url(entry, environ, errors, existing)
        values["webhook_format"] = _format(entry.get("format"), errors)
    else:
        values["email_to"] = _recipients(entry.get("to"), errors)
    sync_names = _references(entry, "syncs", errors, Sync, document_syncs)
    destination_names = _references(entry, "destinations", errors, Destination, document_destinations)
    if errors.count:
        return None

    alert_plan = AlertPlan(name=name, existing=existing, values=values, webhook_url=webhook_url,
                           sync_names=sync_names, destination_names=destination_names)
    if existing is None:
        return alert_plan
    alert_plan.changed = [
        DOCUMENT_NAMES.get(key, key) for key, value in values.items() if getattr(existing, key) != value
    ]
    if set(existing.syncs.values_list("name", flat=True)) != set(sync_names):
        alert_plan.changed.append("syncs")
    if set(existing.destinations.values_list("name", flat=True)) != set(destination_names):
        alert_plan.changed.append("destinations")
    if channel == AlertRule.Channel.EMAIL and existing.channel == AlertRule.Channel.WEBHOOK:
        alert_plan.webhook_url = ""  # an email rule keeps no URL
    if alert_plan.webhook_url is not None and _url_differs(existing, alert_plan.webhook_url):
        alert_plan.changed.append("url")
    return alert_plan


def _events(value: Any, errors: EntryErrors) -> list[str]:
    if not isinstance(value, list) or not value:
        errors.add("on", f"must be a non-empty list of events: {', '.join(AlertEvent.values)}.")
        return []
    unknown = [event for event in value if event not in AlertEvent.values]
    if unknown:
        shown = ", ".join(repr(event) if isinstance(event, str) else json_type(event) for event in unknown)
        errors.add("on", f"unknown event {shown}; events are {', '.join(AlertEvent.values)}.")
        return []
    # Stored in a fixed order, so reordering the file changes nothing.
    return [event for event in AlertEvent.values if event in value]


def _boolean(entry: dict[str, Any], key: str, errors: EntryErrors) -> bool:
    value = entry.get(key, True)
    if not isinstance(value, bool):
        errors.add(key, f"must be true or false, not {json_type(value)}.")
        return True
    return value


def _share(value: Any, errors: EntryErrors) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        errors.add("min_failed_share", f"must be a number from 0 to 1 (e.g. 0.01 for 1 %), not {value!r}.")
        return None
    return float(value)


def _intervals(value: Any, errors: EntryErrors) -> int:
    if value is None:
        return DEFAULT_STALE_AFTER_INTERVALS
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_STALE_AFTER_INTERVALS:
        errors.add("stale_after_intervals",
                   f"must be a whole number from 1 to {MAX_STALE_AFTER_INTERVALS}, not {value!r}.")
        return DEFAULT_STALE_AFTER_INTERVALS
    return value


def _format(value: Any, errors: EntryErrors) -> str:
    if value is None:
        return AlertRule.WebhookFormat.JSON
    if value not in AlertRule.WebhookFormat.values:
        errors.add("format", f"must be one of {', '.join(AlertRule.WebhookFormat.values)}, not {value!r}.")
        return AlertRule.WebhookFormat.JSON
    return value


def _webhook_url(entry: dict[str, Any], environ: Mapping[str, str], errors: EntryErrors,
                 existing: AlertRule | None) -> str | None:
    before = errors.count
    url = resolve_secret(entry, "url", errors, environ)
    if errors.count > before:
        return None
    if not url:
        keeps = existing is not None and existing.channel == AlertRule.Channel.WEBHOOK
        if not keeps:
            errors.add("url", 'is required for a webhook alert; use {"env": "VARIABLE_NAME"} to keep it out of the file.')
        return None
    try:
        webhook_url_check(url)
    except WebhookUrlRefused as exc:
        errors.add("url", exc.message)  # names the host at most, never the URL
        return None
    return url


def _recipients(value: Any, errors: EntryErrors) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
        errors.add("to", "must be a non-empty list of email addresses.")
        return []
    try:
        return recipients_parse(",".join(value))
    except ValidationError as exc:
        errors.add("to", exc.messages[0])
        return []


def _references(entry: dict[str, Any], key: str, errors: EntryErrors, model: type[Sync] | type[Destination],
                in_document: set[str]) -> list[str]:
    value = entry.get(key)
    if value is None:
        return []
    noun = key[:-1]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        errors.add(key, f"must be a list of {noun} names.")
        return []
    names = list(dict.fromkeys(item.strip() for item in value))
    known = set(model.objects.filter(name__in=names).values_list("name", flat=True)) | in_document
    for missing in (name for name in names if name not in known):
        errors.add(key, f'no {noun} named "{missing}" in this document or the database.')
    return names


def _url_differs(existing: AlertRule, url: str) -> bool:
    try:
        stored = AlertRule.objects.values_list("webhook_url", flat=True).get(pk=existing.pk)
    except SecretDecryptionError:
        return True  # unreadable (lost key): the document's URL replaces it
    return stored != url


def alert_plan_write(alert_plan: AlertPlan) -> AlertRule:
    rule = alert_plan.existing
    if rule is None:
        rule = AlertRule.objects.create(name=alert_plan.name, webhook_url=alert_plan.webhook_url or "",
                                        **alert_plan.values)
    elif alert_plan.changed:
        fields = [MODEL_FIELDS.get(name, name) for name in alert_plan.changed if name not in ("syncs", "destinations")]
        for key in fields:
            value = alert_plan.webhook_url or "" if key == "webhook_url" else alert_plan.values[key]
            setattr(rule, key, value)
        if fields:
            # update_fields keeps an unchanged URL out of the UPDATE: it is not re-encrypted.
            rule.save(update_fields=[*fields, "updated_at"])
    if alert_plan.existing is None or "syncs" in alert_plan.changed:
        rule.syncs.set(Sync.objects.filter(name__in=alert_plan.sync_names))
    if alert_plan.existing is None or "destinations" in alert_plan.changed:
        rule.destinations.set(Destination.objects.filter(name__in=alert_plan.destination_names).defer("client_secret"))
    return rule
