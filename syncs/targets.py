"""One field per sync, per destination account.

A field (column, attribute, Marketo field) holds the membership of one cohort. Two syncs
writing it would overwrite each other, whether they go through one destination record or
two records pointing at the same data extension, attribute set or Marketo instance. The
sync model, the admin forms and `apply` all ask `sync_field_owner` and say it with
`field_taken_message`.
"""

from __future__ import annotations

from collections.abc import Iterable

from destinations.accounts import KindSettings, destination_field_scope_label
from destinations.models import Destination
from destinations.selectors import destinations_sharing_field_scope
from syncs.models import Sync


def sync_field_owner(
    *,
    destination: Destination | KindSettings,
    destination_id: int | None,
    target_field: str,
    exclude_sync_ids: Iterable[int | None] = (),
) -> Sync | None:
    """The sync that already writes `target_field` where `destination` writes (names
    compared case-insensitively, as SFMC and Marketo compare them), if any."""
    field = (target_field or "").strip()
    if not field:
        return None
    sharing = destinations_sharing_field_scope(destination, destination_id=destination_id)
    if not sharing:
        return None
    owners = (
        Sync.objects.filter(destination_id__in=sharing, target_field__iexact=field)
        .exclude(pk__in=[pk for pk in exclude_sync_ids if pk is not None])
        .select_related("destination")
        .defer("destination__client_secret")
        .order_by("pk")
    )
    return owners.first()


def field_taken_message(
    *, field: str, destination: Destination | KindSettings, destination_name: str, owner: Sync
) -> str:
    """The field is taken: by which sync, and through which destination if not this one."""
    if owner.destination.name == destination_name:
        where = f"The field '{field}' of {destination_name} is already written by the sync '{owner.name}'."
    else:
        where = (
            f"The field '{field}' is already written by the sync '{owner.name}' through the "
            f"destination {owner.destination.name}, which writes to the same place: "
            f"{destination_field_scope_label(destination)}."
        )
    return (
        f"{where} Two syncs writing one field would overwrite each other: choose another field."
    )
