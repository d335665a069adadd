"""The `marketo_static_list` kind, as the rest of CohortSync sees it."""

from __future__ import annotations

from destinations.kindspec import KindSpec
from destinations.marketo import settings as marketo

SPEC = KindSpec(
    kind="marketo_static_list",
    label="Marketo: static list",
    short_label="Marketo static list",
    connector="destinations.marketo_static_list.connector.StaticListConnector",
    calls_projection="destinations.marketo_static_list.projection.project_calls",
    settings=(marketo.BASE_URL,),
    fieldsets=(marketo.FIELDSET,),
    options=marketo.MarketoOptions,
    **marketo.ACCOUNT_SPEC,
    target_help="Marketo static list: the list's exact name (capitals included), or id:1234 for "
    "a list by its id. The list must already exist; members are added to it, leavers removed.",
    missing_target_hint="Marketo has no static list with this exact name: create it in Marketo "
    "first (or use id:1234), or saving is refused.",
    # Lists are the instance's, apart from its lead fields.
    field_scope=lambda settings: f"{marketo.marketo_account_key(settings)}|lists",
    field_scope_label=lambda settings: f"the static lists of the Marketo instance {marketo.marketo_instance(settings)}",
    # A run cannot create the list, and finding it only reads: apply checks it exists.
    target_checked_on_apply=True,
)
