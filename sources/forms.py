"""Admin forms for sources and profile imports: parsing and validation only."""

from __future__ import annotations

from typing import Any

from django import forms

from cohorts.forms import PrettyJSONField
from sources.connections import SourceUrlError, source_url_parse
from sources.models import ProfileImport, Source
from sources.validation import (
    SettingError,
    incremental_column_clean,
    source_options_clean,
    sql_clean,
)


class SourceForm(forms.ModelForm):
    new_password = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown again. Leave empty to keep the stored one "
        "(a password inside the URL is taken too).",
    )
    clear_password = forms.BooleanField(label="Remove the stored password", required=False)
    options = PrettyJSONField(
        required=False,
        help_text='{"statement_timeout_seconds": 300, "time_zone": "UTC"}: the longest one read '
        "may take, and the zone of timestamps stored without one.",
    )

    class Meta:
        model = Source
        fields = ("name", "url", "options")

    def clean_url(self) -> str:
        try:
            parsed = source_url_parse(self.cleaned_data.get("url") or "")
        except SourceUrlError as exc:
            raise forms.ValidationError(exc.message) from None
        self.parsed_url = parsed
        return parsed.url

    def clean_options(self) -> dict[str, Any]:
        try:
            return source_options_clean(self.cleaned_data.get("options"))
        except SettingError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        parsed = getattr(self, "parsed_url", None)
        given = cleaned.get("new_password") or (parsed.password if parsed else "")
        if given and cleaned.get("clear_password"):
            raise forms.ValidationError("Give a new password or remove it, not both.")
        return cleaned

    def save(self, commit: bool = True) -> Source:
        source = super().save(commit=False)
        parsed = getattr(self, "parsed_url", None)
        if parsed is not None:
            source.kind = parsed.kind
        password = self.cleaned_data.get("new_password") or (parsed.password if parsed else "")
        if password:
            source.password = password
        elif self.cleaned_data.get("clear_password"):
            source.password = ""
        if commit:
            source.save()
        return source


class ProfileImportForm(forms.ModelForm):
    sql = forms.CharField(
        label="SQL",
        widget=forms.Textarea(attrs={"rows": 10, "cols": 90, "class": "vLargeTextField", "spellcheck": "false",
                                     "placeholder": 'SELECT id AS distinct_id, email AS "$email", plan, updated_at\n'
                                                    "FROM users"}),
        help_text=ProfileImport._meta.get_field("sql").help_text,
    )

    class Meta:
        model = ProfileImport
        fields = ("name", "source", "sql", "every_minutes", "incremental_column", "delete_missing", "enabled")

    def clean_sql(self) -> str:
        try:
            return sql_clean(self.cleaned_data.get("sql"))
        except SettingError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_incremental_column(self) -> str:
        try:
            return incremental_column_clean(self.cleaned_data.get("incremental_column"))
        except SettingError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_every_minutes(self) -> int | None:
        value = self.cleaned_data.get("every_minutes")
        if value is not None and not 1 <= value <= 43_200:
            raise forms.ValidationError("Give a number of minutes from 1 to 43200, or leave it empty.")
        return value
