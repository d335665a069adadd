"""Read-only questions about destinations (no HTTP, no writes)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.db.models import BooleanField, Count, ExpressionWrapper, Q, QuerySet, TextChoices

from destinations.accounts import KindSettings, destination_field_scope
from destinations.kinds import kind_spec
from destinations.kindspec import UnknownKindError
from destinations.models import Destination
from destinations.url_policy import is_official_api_host


class ConnectionState(TextChoices):
    CONNECTED = "connected", "Connected"
    FAILING = "failing", "Connection failing"
    NEVER_CHECKED = "never", "Never checked"


def destination_connection_state(destination: Destination) -> ConnectionState:
    if destination.connection_checked_at is None or destination.is_connected is None:
        return ConnectionState.NEVER_CHECKED
    return ConnectionState.CONNECTED if destination.is_connected else ConnectionState.FAILING


def destinations_in_state(queryset: QuerySet[Destination], state: str) -> QuerySet[Destination]:
    if state == ConnectionState.CONNECTED:
        return queryset.filter(is_connected=True, connection_checked_at__isnull=False)
    if state == ConnectionState.FAILING:
        return queryset.filter(is_connected=False, connection_checked_at__isnull=False)
    if state == ConnectionState.NEVER_CHECKED:
        return queryset.filter(Q(connection_checked_at__isnull=True) | Q(is_connected__isnull=True))
    return queryset


def destinations_for_listing(queryset: QuerySet[Destination] | None = None) -> QuerySet[Destination]:
    """Destinations with `sync_count` and `has_secret`, without loading the secret itself.

    Deferring the secret keeps pages that never show it from decrypting it, and keeps them
    working when a secret can no longer be decrypted (a lost key), so it can be re-entered.
    """
    queryset = Destination.objects.all() if queryset is None else queryset
    return queryset.defer("client_secret").annotate(
        sync_count=Count("syncs", distinct=True),
        has_secret=ExpressionWrapper(~Q(client_secret=""), output_field=BooleanField()),
    )


def destination_has_secret(destination: Destination) -> bool:
    """Whether a secret is stored, answered without decrypting it."""
    annotated = getattr(destination, "has_secret", None)
    if annotated is not None:
        return bool(annotated)
    if destination.pk is None:
        return bool(destination.__dict__.get("client_secret"))
    return Destination.objects.filter(pk=destination.pk).exclude(client_secret="").exists()


def destination_api_url(destination: Destination) -> str:
    """The first URL a connector contacts (the kind's spec says which, from its settings)."""
    spec = kind_spec(destination.kind)
    return spec.api_url({name: getattr(destination, name) or "" for name in spec.setting_names})


def destination_is_sandbox(destination: Destination) -> bool:
    """True when the destination talks to a host that is not an official API host.

    Such hosts are only reachable through COHORTSYNC_ALLOWED_API_HOSTS: the bundled
    emulators, or a proxy in front of the real platform. A destination of a kind this
    version does not know has no API URL to call: False.
    """
    try:
        url = destination_api_url(destination)
    except UnknownKindError:
        return False
    host = (urlsplit(url).hostname or "").lower()
    if not host:
        return False
    return not is_official_api_host(host)


def destinations_sharing_field_scope(
    destination: Destination | KindSettings, *, destination_id: int | None
) -> list[int]:
    """Ids of the destinations whose fields are the same columns as `destination`'s (same
    account and data extension or attribute set, or same Marketo instance), its own id
    included. `destination` may hold unsaved settings; `destination_id` is its row, if any.
    Reads every destination of the kind: a handful, without their secrets."""
    scope = destination_field_scope(destination)
    others = Destination.objects.filter(kind=destination.kind).defer("client_secret")
    if destination_id is not None:
        others = others.exclude(pk=destination_id)
    ids = [other.pk for other in others if destination_field_scope(other) == scope]
    return [*ids, destination_id] if destination_id is not None else ids
