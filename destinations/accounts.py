"""Which platform account a destination writes to, and where its field names live.

Two destination records may point at one account (a copy made for another team, a second
record for a different data extension). Anything that must hold per account rather than
per record (one field per sync, above all) asks these functions, never the record's id.
They read plain settings (a Destination row, a DestinationConfig or apply's planned
values), so apply can ask before anything is saved.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import urlsplit

from destinations.models import DestinationKind


class DestinationSettings(Protocol):
    """The settings that say where a destination writes (Destination and DestinationConfig
    both have them)."""

    kind: str
    subdomain: str
    account_id: str
    auth_base_url: str
    data_extension_key: str
    attribute_set: str
    base_url: str


def destination_account_key(destination: DestinationSettings) -> str:
    """The account a destination writes to: the SFMC tenant (its auth host, or the
    configured auth base URL) and business unit (MID), or the Marketo instance (the REST
    host). Equal keys mean one account, whatever the records are called."""
    if destination.kind == DestinationKind.MARKETO:
        url = (destination.base_url or "").strip()
        host = urlsplit(url).netloc or url
        return f"marketo:{host.lower()}"
    configured = (destination.auth_base_url or "").strip().rstrip("/")
    for suffix in ("/v2/token", "/v1/requesttoken"):
        if configured.lower().endswith(suffix):
            configured = configured[: -len(suffix)]
    tenant = configured or f"https://{(destination.subdomain or '').strip()}.auth.marketingcloudapis.com"
    return f"sfmc:{tenant.lower()}|{(destination.account_id or '').strip()}"


def destination_field_scope(destination: DestinationSettings) -> str:
    """Where the destination's field names live: a data extension or an attribute set of
    an SFMC account, or a Marketo instance's lead fields. A field name means the same
    column wherever the scope is equal (names compare case-insensitively, as both
    platforms do)."""
    account = destination_account_key(destination)
    if destination.kind == DestinationKind.SFMC_DATA_EXTENSION:
        return f"{account}|de:{(destination.data_extension_key or '').strip().lower()}"
    if destination.kind == DestinationKind.SFMC_CONTACTS:
        return f"{account}|attributes:{(destination.attribute_set or '').strip().lower()}"
    return account


def destination_field_scope_label(destination: DestinationSettings) -> str:
    """The scope in words, for messages: "data extension 'COHORTS_DE' of the SFMC account
    mc123 (MID 514009877)"."""
    if destination.kind == DestinationKind.MARKETO:
        url = (destination.base_url or "").strip()
        return f"the Marketo instance {urlsplit(url).netloc or url}"
    tenant = (destination.subdomain or "").strip() or urlsplit(
        (destination.auth_base_url or "").strip()
    ).netloc
    account = f"the SFMC account {tenant}"
    if (destination.account_id or "").strip():
        account += f" (MID {destination.account_id.strip()})"
    if destination.kind == DestinationKind.SFMC_DATA_EXTENSION:
        return f"the data extension '{destination.data_extension_key}' of {account}"
    return f"the attribute set '{destination.attribute_set}' of {account}"
