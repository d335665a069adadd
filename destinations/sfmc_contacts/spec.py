"""The `sfmc_contacts` kind, as the rest of CohortSync sees it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from destinations.kindspec import Fieldset, KindSpec, SettingField, SyncOption, bounded
from destinations.sfmc import settings as sfmc

DEFAULT_ATTRIBUTE_SET = "Email Demographics"
DEFAULT_MEMBER_VALUE = "realized"
DEFAULT_EXITED_VALUE = "exited"


@dataclass(frozen=True)
class ContactsOptions(sfmc.SfmcOptions):
    # Contacts per batch (each one a PATCH, sent in parallel within max_concurrency).
    rowset_batch_size: int = bounded(50, 1, 200)


def _text_value_problem(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return None
    return f'must be non-empty text, e.g. "{DEFAULT_MEMBER_VALUE}" / "{DEFAULT_EXITED_VALUE}".'


SPEC = KindSpec(
    kind="sfmc_contacts",
    label="Salesforce Marketing Cloud: contacts",
    short_label="SFMC contacts",
    connector="destinations.sfmc_contacts.connector.ContactsConnector",
    calls_projection="destinations.sfmc_contacts.projection.project_calls",
    settings=(
        *sfmc.SETTINGS,
        SettingField(
            name="attribute_set",
            label="Attribute set",
            help="The attribute set that gets one text attribute per cohort, usually "
            f"'{DEFAULT_ATTRIBUTE_SET}' (Contact Builder > Data Designer). Empty means "
            f"'{DEFAULT_ATTRIBUTE_SET}'.",
            default=DEFAULT_ATTRIBUTE_SET,
        ),
    ),
    fieldsets=(
        sfmc.FIELDSET,
        Fieldset(
            title="SFMC contacts",
            description="Each synced cohort becomes a text attribute in this attribute set; the "
            "identity is the Contact Key.",
            fields=("attribute_set",),
        ),
    ),
    options=ContactsOptions,
    **sfmc.ACCOUNT_SPEC,
    target_help="SFMC contacts: a text attribute in the destination's attribute set.",
    missing_target_hint="Not an attribute of the attribute set: create it in Contact Builder "
    "first, or saving is refused.",
    field_scope=lambda settings: (
        f"{sfmc.sfmc_account_key(settings)}|attributes:{(settings.get('attribute_set') or '').strip().lower()}"
    ),
    field_scope_label=lambda settings: (
        f"the attribute set '{settings.get('attribute_set')}' of {sfmc.sfmc_account_label(settings)}"
    ),
    sync_options=(
        SyncOption("member_value", _text_value_problem),
        SyncOption("exited_value", _text_value_problem, dynamic_only=True),
    ),
)
