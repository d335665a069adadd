"""The destination settings form: each kind's settings from its spec, a write-only secret."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import MaxLengthValidator

from cohortsync_site.forms import JSONValueField
from destinations.accounts import KindSettings, destination_field_scope_label
from destinations.kinds import all_settings, kind_names, kind_spec, kind_specs
from destinations.kindspec import KindSpec, SettingField, UnknownKindError
from destinations.models import Destination
from destinations.selectors import destination_has_secret
from destinations.validation import SettingError, setting_clean, validate_destination_options

# What people paste into a setting with a normaliser (a whole URL for a subdomain) may be
# longer than what is stored; the model's max_length applies after normalising.
PASTED_MAX_LENGTH = 500


def _options_help() -> str:
    return "Optional tuning as a JSON object (defaults in brackets). " + " ".join(
        f"{spec.short_label}: {spec.options.described()}." for spec in kind_specs()
    )


def _credentials_help() -> str:
    return " ".join(dict.fromkeys(spec.credentials_help for spec in kind_specs()))


class DestinationForm(forms.ModelForm):
    new_client_secret = forms.CharField(
        label="Client secret",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only: the stored secret is never shown. Leave empty to keep it.",
    )
    clear_client_secret = forms.BooleanField(
        label="Remove stored secret",
        required=False,
        help_text="Delete the stored secret, e.g. after revoking it. Syncs to this destination "
        "fail until a new one is entered.",
    )

    class Meta:
        model = Destination
        fields = ["name", "kind", *(setting.name for setting in all_settings()), "client_id", "options"]
        # URLField's own URL check runs before clean() and would reject hosts such as
        # "localhost" with a vaguer message than ours.
        field_classes = {
            **{setting.name: forms.CharField for setting in all_settings() if setting.is_url},
            "options": JSONValueField,
        }
        labels = {"client_id": "Client id", **{setting.name: setting.label for setting in all_settings()}}
        help_texts = {setting.name: setting.help for setting in all_settings()}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The admin leaves read-only fields out of the form (all of them for a view-only user).
        if "options" in self.fields:
            self.fields["options"].required = False
            self.fields["options"].help_text = _options_help()
        if "client_id" in self.fields:
            self.fields["client_id"].help_text = _credentials_help()
        if "new_client_secret" in self.fields:
            self.fields["new_client_secret"].help_text += " " + _credentials_help()
        for setting in all_settings():
            field = self.fields.get(setting.name)
            if setting.normalize is not None and field is not None:
                field.max_length = PASTED_MAX_LENGTH
                field.validators = [v for v in field.validators if not isinstance(v, MaxLengthValidator)]
                field.widget.attrs["maxlength"] = str(PASTED_MAX_LENGTH)

    def _get_validation_exclusions(self):  # type: ignore[no-untyped-def]
        # Checked by clean() with clearer messages (and hosts such as "sandbox:8765", which
        # URLValidator rejects, are fine when listed in COHORTSYNC_ALLOWED_API_HOSTS).
        return {*super()._get_validation_exclusions(), *(s.name for s in all_settings() if s.is_url)}

    @property
    def is_creating(self) -> bool:
        return self.instance.pk is None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if not kind:
            return cleaned
        try:
            spec = kind_spec(kind)
        except UnknownKindError:
            self.add_error("kind", f"Choose one of the known kinds: {', '.join(kind_names())}.")
            return cleaned
        self._check_kind_change(kind)
        # Settings of other kinds are cleared, so a changed kind never leaves a stale value
        # that a connector might pick up.
        for setting in all_settings():
            if setting.name not in spec.setting_names:
                cleaned[setting.name] = ""
        self._require(cleaned, "client_id", "Enter the client id of the API integration.")
        self._clean_secret(cleaned)
        self._clean_settings(cleaned, spec)
        if "options" in cleaned:
            try:
                cleaned["options"] = validate_destination_options(kind, cleaned["options"])
            except SettingError as exc:
                self.add_error("options", str(exc))
        if not self.errors:
            self._check_shared_fields(cleaned, spec)
        return cleaned

    def _clean_settings(self, cleaned: dict[str, Any], spec: KindSpec) -> None:
        for setting in spec.settings:
            if setting.name not in cleaned:
                continue  # the field's own checks refused it already
            if setting.required and not self._require(cleaned, setting.name, setting.required_message):
                continue
            self._clean_setting(cleaned, setting)

    def _clean_setting(self, cleaned: dict[str, Any], setting: SettingField) -> None:
        try:
            cleaned[setting.name] = setting_clean(setting, (cleaned[setting.name] or "").strip())
        except SettingError as exc:
            self.add_error(setting.name, str(exc))

    def _check_shared_fields(self, cleaned: dict[str, Any], spec: KindSpec) -> None:
        """Pointing this destination at a data extension, attribute set or Marketo instance
        that another destination's syncs write must not make two syncs share a field."""
        if self.is_creating:
            return
        # Local import: syncs builds on destinations, not the other way round.
        from syncs.targets import sync_field_owner

        settings = KindSettings(spec.kind, {name: cleaned.get(name) or "" for name in spec.setting_names})
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

    def _require(self, cleaned: dict[str, Any], name: str, message: str) -> bool:
        value = cleaned.get(name)
        if isinstance(value, str):
            value = value.strip()
            cleaned[name] = value
        if value:
            return True
        if name not in self.errors:
            self.add_error(name, message)
        return False

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
