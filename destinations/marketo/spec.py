"""The `marketo` kind: a cohort is one Boolean custom lead field, set true/false by email."""

from __future__ import annotations

from destinations.kindspec import KindSpec
from destinations.marketo import settings as marketo

SPEC = KindSpec(
    kind="marketo",
    label="Marketo",
    short_label="Marketo",
    connector="destinations.marketo.connector.MarketoConnector",
    calls_projection="destinations.marketo.projection.project_calls",
    settings=(marketo.BASE_URL,),
    fieldsets=(marketo.FIELDSET,),
    options=marketo.MarketoOptions,
    **marketo.ACCOUNT_SPEC,
    target_help="Marketo: a Boolean custom field on the lead, by its REST API name (Admin > "
    "Field Management), not its display name. The field must already exist.",
    missing_target_hint="Marketo has no such field: create it in Field Management first, or "
    "saving is refused.",
    # Lead fields are the instance's.
    field_scope=marketo.marketo_account_key,
    field_scope_label=lambda settings: f"the Marketo instance {marketo.marketo_instance(settings)}",
)
