"""The destination settings form: per-kind validation and a write-only secret."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import MaxLengthValidator

from cohortsync_site.forms import JSONValueField
from destinations.accounts import destination_field_scope_label
from destinations.base import DestinationConfig
from destinations.errors import EndpointNotAllowedError
from destinations.http import ensure_url_allowed
from destinations.models import SFMC_KINDS, Destination, DestinationKind
from destinations.selectors import destination_has_secret
from destinations.validation import (
    SettingError,
    normalize_marketo_base_url,
    normalize_sfmc_auth_base_url,
    normalize_sfmc_subdomain,
    validate_destination_options,
    validate_sfmc_account_id,
)

DEFAULT_ATTRIBUTE_SET = "Email Demographics"

# Settings that only mean something for some kinds; cleared for the others so a changed
# kind never leaves a stale value that a connector might pick up.
KIND_FIELDS: dict[str, frozenset[str]] = {
    DestinationKind.SFMC_DATA_EXTENSION: frozenset(
        {"subdomain", "account_id", "auth_base_url", "data_extension_key", "key_column"}
    ),
    DestinationKind.SFMC_CONTACTS: frozenset(
        {"subdomain", "account_id", "auth_base_url", "attribute_set"}
    ),
    DestinationKind.MARKETO: frozenset({"base_url"}),
}
ALL_KIND_FIELDS = frozenset().union(*KIND_FIELDS.values())

REQUIRED_MESSAGES = {
    "subdomain": "Enter the SFMC subdomain (Setup > Apps > Installed Packages > your package).",
    "client_id": "Enter the client id of the API integration.",
    "data_extension_key": "Enter the external key of the data extension "
    "(Contact Builder > Data Extensions > your data extension > Properties).",
    "key_column": "Enter the data extension's primary-key column that holds the user's "
    "identity, e.g. SubscriberKey or Contact Key.",
    "base_url": "Enter the Marketo REST endpoint from Admin > Web Services.",
}


class DestinationForm(forms.ModelForm):
    new_client_secret = forms.CharField(
        label="Client secret",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: the stored secret is never shown. Leave empty to keep it. "
        "SFMC: Setup > Apps > Installed Packages > your package > API Integration. "
        "Marketo: Admin > LaunchPoint > your service > View Details.",
    )
    clear_client_secret = forms.BooleanField(
        label="Remove stored secret",
        required=False,
        help_text="Delete the stored secret, e.g. after revoking it. Syncs to this destination "
        "fail until a new one is entered.",
    )

    class Meta:
        model = Destination
        fields = [
            "name",
            "kind",
            "subdomain",
            "account_id",
            "auth_base_url",
            "data_extension_key",
            "key_column",
            "attribute_set",
            "base_url",
            "client_id",
            "options",
        ]
        # URLField's own URL check runs before clean() and would reject hosts such as
        # "localhost" with a vaguer message than ours.
        field_classes = {
            "auth_base_url": forms.CharField,
            "base_url": forms.CharField,
            "options": JSONValueField,
        }
        labels = {
            "client_id": "Client id",
            "account_id": "Account id (MID)",
            "auth_base_url": "Auth base URL",
            "base_url": "REST endpoint",
            "data_extension_key": "Data extension external key",
        }
        help_texts = {
            "account_id": "Optional MID of the business unit to write to (Setup > Business "
            "Units, or under the account name at the top right). Empty uses the business unit "
            "that owns the installed package.",
            "data_extension_key": "The external key, not the name (Contact Builder > Data "
            "Extensions > your data extension > Properties > External Key).",
            "client_id": "SFMC: Setup > Apps > Installed Packages > your package > API "
            "Integration (server-to-server). Marketo: Admin > LaunchPoint > your service > "
            "View Details.",
            "auth_base_url": "Optional. Leave empty for "
            "https://{subdomain}.auth.marketingcloudapis.com; set it only for a sandbox or a "
            "proxy listed in COHORTSYNC_ALLOWED_API_HOSTS.",
            "attribute_set": "The attribute set that gets one text attribute per cohort, "
            f"usually '{DEFAULT_ATTRIBUTE_SET}' (Contact Builder > Data Designer). Empty means "
            f"'{DEFAULT_ATTRIBUTE_SET}'.",
            "options": "Optional tuning as a JSON object. SFMC: requests_per_second (20), "
            "max_concurrency (4), rowset_batch_size (50), async_threshold (1000), "
            "async_batch_size (32000). Marketo: calls_per_20s (50), max_concurrency (5), "
            "batch_size (300), bulk_threshold (50000).",
        }

    # Checked by clean() with clearer messages (and hosts such as "sandbox:8765", which
    # URLValidator rejects, are fine when listed in COHORTSYNC_ALLOWED_API_HOSTS).
    URL_FIELDS = ("auth_base_url", "base_url")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The admin leaves read-only fields out of the form (all of them for a view-only user).
        if "options" in self.fields:
            self.fields["options"].required = False
        # A pasted SFMC URL is longer than the subdomain it is reduced to; the model's
        # max_length applies after normalisation.
        subdomain = self.fields.get("subdomain")
        if subdomain is not None:
            subdomain.max_length = 500
            subdomain.validators = [v for v in subdomain.validators if not isinstance(v, MaxLengthValidator)]
            subdomain.widget.attrs["maxlength"] = "500"

    def _get_validation_exclusions(self):  # type: ignore[no-untyped-def]
        return {*super()._get_validation_exclusions(), *self.URL_FIELDS}

    @property
    def is_creating(self) -> bool:
        return self.instance.pk is None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if not kind:
            return cleaned
        self._check_kind_change(kind)
        for name in ALL_KIND_FIELDS - KIND_FIELDS[kind]:
            cleaned[name] = ""
        self._require(cleaned, "client_id")
        self._clean_secret(cleaned)
        if kind in SFMC_KINDS:
            self._clean_sfmc(cleaned, kind)
        else:
            self._clean_marketo(cleaned)
        self._apply(cleaned, "options", lambda v: validate_destination_options(kind, v))
        if not self.errors:
            self._check_shared_fields(cleaned)
        return cleaned

    def _check_shared_fields(self, cleaned: dict[str, Any]) -> None:
        """Pointing this destination at a data extension, attribute set or Marketo instance
        that another destination's syncs write must not make two syncs share a field."""
        if self.is_creating:
            return
        # Local import: syncs builds on destinations, not the other way round.
        from syncs.targets import sync_field_owner

        settings = DestinationConfig(
            name=cleaned.get("name") or self.instance.name, client_id="", client_secret="",
            **{name: cleaned.get(name) or "" for name in ("kind", *ALL_KIND_FIELDS)},
        )
        mine = list(self.instance.syncs.values_list("pk", "name", "target_field"))
        for _, name, field in mine:
            owner = sync_field_owner(
                destination=settings, destination_id=self.instance.pk, target_field=field,
                exclude_sync_ids=[pk for pk, _, _ in mine],
            )
            if owner is not None:
                self.add_error(
                    None,
                    f"With these settings, this destination writes to the same place as "
                    f"{owner.destination.name} ({destination_field_scope_label(settings)}), "
                    f"and two syncs would write the field '{field}': '{name}' here and "
                    f"'{owner.name}' there. Change the field of one of them first.",
                )

    def _check_kind_change(self, kind: str) -> None:
        if self.is_creating or kind == self.instance.kind:
            return
        if self.instance.syncs.exists():
            self.add_error(
                "kind",
                "Syncs already write to this destination, so its kind cannot change: what they "
                "synced lives in the old kind's fields. Create a new destination instead.",
            )

    def _clean_secret(self, cleaned: dict[str, Any]) -> None:
        new_secret = cleaned.get("new_client_secret") or ""
        if new_secret and cleaned.get("clear_client_secret"):
            self.add_error(
                "clear_client_secret",
                "Either enter a new secret or remove the stored one, not both.",
            )
        elif self.is_creating and not new_secret:
            self.add_error("new_client_secret", "Enter the client secret of the API integration.")

    def _clean_sfmc(self, cleaned: dict[str, Any], kind: str) -> None:
        if self._require(cleaned, "subdomain"):
            self._apply(cleaned, "subdomain", normalize_sfmc_subdomain)
        self._apply(cleaned, "account_id", validate_sfmc_account_id)
        if self._apply(cleaned, "auth_base_url", normalize_sfmc_auth_base_url):
            if cleaned["auth_base_url"]:
                self._check_url_allowed(cleaned, "auth_base_url")
        if kind == DestinationKind.SFMC_DATA_EXTENSION:
            self._require(cleaned, "data_extension_key")
            self._require(cleaned, "key_column")
        else:
            cleaned["attribute_set"] = (cleaned.get("attribute_set") or "").strip() or (
                DEFAULT_ATTRIBUTE_SET
            )

    def _clean_marketo(self, cleaned: dict[str, Any]) -> None:
        if self._require(cleaned, "base_url") and self._apply(
            cleaned, "base_url", normalize_marketo_base_url
        ):
            self._check_url_allowed(cleaned, "base_url")

    def _require(self, cleaned: dict[str, Any], name: str) -> bool:
        value = cleaned.get(name)
        if isinstance(value, str):
            value = value.strip()
            cleaned[name] = value
        if value:
            return True
        if name not in self.errors:
            self.add_error(name, REQUIRED_MESSAGES.get(name, "This field is required."))
        return False

    def _apply(self, cleaned: dict[str, Any], name: str, normalize: Any) -> bool:
        if name not in cleaned:
            return False
        try:
            cleaned[name] = normalize(cleaned[name])
        except SettingError as exc:
            self.add_error(name, str(exc))
            return False
        return True

    def _check_url_allowed(self, cleaned: dict[str, Any], name: str) -> None:
        try:
            ensure_url_allowed(cleaned[name])
        except EndpointNotAllowedError as exc:
            self.add_error(name, exc.message)

    def save(self, commit: bool = True) -> Destination:
        destination = super().save(commit=False)
        if self.cleaned_data.get("new_client_secret"):
            destination.client_secret = self.cleaned_data["new_client_secret"]
        elif self.cleaned_data.get("clear_client_secret"):
            destination.client_secret = ""
        # Otherwise the attribute stays deferred (or unchanged) and the stored secret is kept.
        if commit:
            destination.save()
            self._save_m2m()
        return destination

    def secret_is_set(self) -> bool:
        return not self.is_creating and destination_has_secret(self.instance)
