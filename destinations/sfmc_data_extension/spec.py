"""The `sfmc_data_extension` kind, as the rest of CohortSync sees it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from destinations.kindspec import Fieldset, KindSpec, SettingField, SyncOption, bounded
from destinations.sfmc import settings as sfmc

DEFAULT_KEY_COLUMN = "SubscriberKey"
# The rowset endpoint: at most 50 rows per call (SFMC's best practice). The async upsert:
# up to 32,000 rows per request.
ROWSET_MAX_BATCH = 50
ASYNC_MAX_BATCH = 32_000


@dataclass(frozen=True)
class DataExtensionOptions(sfmc.SfmcOptions):
    rowset_batch_size: int = bounded(ROWSET_MAX_BATCH, 1, ROWSET_MAX_BATCH)
    # Runs with more changes than this use the asynchronous upsert.
    async_threshold: int = bounded(1000, 0, 100_000_000)
    async_batch_size: int = bounded(ASYNC_MAX_BATCH, 1, ASYNC_MAX_BATCH)


def _create_missing_field_problem(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false."


def _property_mapping_problem(value: Any) -> str | None:
    if isinstance(value, dict) and all(
        isinstance(k, str) and k.strip() and isinstance(v, str) and v.strip() for k, v in value.items()
    ):
        return None
    return 'must be an object of {"profile property": "Column"} text pairs, e.g. {"plan": "Plan"}.'


SPEC = KindSpec(
    kind="sfmc_data_extension",
    label="Salesforce Marketing Cloud: data extension",
    short_label="SFMC data extension",
    connector="destinations.sfmc_data_extension.connector.DataExtensionConnector",
    calls_projection="destinations.sfmc_data_extension.projection.project_calls",
    settings=(
        *sfmc.SETTINGS,
        SettingField(
            name="data_extension_key",
            label="Data extension external key",
            help="The external key, not the name (Contact Builder > Data Extensions > your data "
            "extension > Properties > External Key).",
            required_message="Enter the external key of the data extension (Contact Builder > "
            "Data Extensions > your data extension > Properties).",
        ),
        SettingField(
            name="key_column",
            label="Key column",
            help="Primary-key column of the data extension that holds the user's identity, e.g. "
            f"'{DEFAULT_KEY_COLUMN}' (Mixpanel-style) or 'Contact Key' (Amplitude-style).",
            required_message="Enter the data extension's primary-key column that holds the "
            "user's identity, e.g. SubscriberKey or Contact Key.",
        ),
    ),
    fieldsets=(
        sfmc.FIELDSET,
        Fieldset(
            title="SFMC data extension",
            description="The data extension must already exist, with the identity column as its "
            "primary key. Each synced cohort becomes a Boolean column, added automatically "
            "unless the sync turns create_missing_field off.",
            fields=("data_extension_key", "key_column"),
        ),
    ),
    options=DataExtensionOptions,
    **sfmc.ACCOUNT_SPEC,
    target_help="SFMC data extension: a Boolean column of the data extension (created if "
    "missing unless the sync's options say otherwise).",
    missing_target_hint="Not a column of the data extension yet: the first run creates it as a "
    "Boolean column (unless the options say create_missing_field: false).",
    field_scope=lambda settings: (
        f"{sfmc.sfmc_account_key(settings)}|de:{(settings.get('data_extension_key') or '').strip().lower()}"
    ),
    field_scope_label=lambda settings: (
        f"the data extension '{settings.get('data_extension_key')}' of {sfmc.sfmc_account_label(settings)}"
    ),
    sync_options=(
        SyncOption("create_missing_field", _create_missing_field_problem),
        SyncOption("property_mapping", _property_mapping_problem),
    ),
)
