"""Admin forms for syncs: the sync form and the "Export to…" form."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from cohorts.models import Cohort
from cohortsync_site.forms import JSONValueField
from destinations.models import DEFAULT_INTERVAL_MINUTES, Destination, DestinationKind
from syncs.models import DISTINCT_ID_IDENTITY, Sync
from syncs.options import sync_option_problems

TARGET_FIELD_DATALIST_ID = "target-field-choices"
TARGET_FIELD_MAX_LENGTH = Sync._meta.get_field("target_field").max_length or 200
# Column, attribute and Marketo API names: letters, digits and underscores, starting with
# a letter. Stricter than some platforms allow, but accepted by all three.
_TARGET_FIELD_SAFE_RE = re.compile(r"[^0-9A-Za-z]+")

TARGET_FIELD_HELP = (
    "Where membership is written. SFMC data extension: a Boolean column of the data "
    "extension (created if missing unless the sync's options say otherwise). SFMC contacts: "
    "a text attribute in the destination's attribute set. Marketo: a Boolean custom field on "
    "the lead, by its REST API name (Admin > Field Management), not its display name."
)
IDENTITY_HELP = (
    "Profile property whose value identifies the user in the destination. Marketo matches "
    "leads by email: use $email. SFMC: the value stored in the data extension's key column "
    f"(or the Contact Key), e.g. {DISTINCT_ID_IDENTITY} for the profile's distinct id, or "
    "$email."
)
INTERVAL_HELP = (
    "Dynamic syncs only. Leave empty for the destination's default: "
    f"{DEFAULT_INTERVAL_MINUTES[DestinationKind.SFMC_DATA_EXTENSION]} minutes for SFMC, "
    f"{DEFAULT_INTERVAL_MINUTES[DestinationKind.MARKETO]} minutes for Marketo."
)

def target_field_suggest(cohort_name: str) -> str:
    """A field name every destination accepts, derived from the cohort name ("Pro users" ->
    "Pro_users")."""
    name = _TARGET_FIELD_SAFE_RE.sub("_", cohort_name).strip("_")
    if not name or not name[0].isalpha():
        name = f"Cohort_{name}".rstrip("_")
    return name[:TARGET_FIELD_MAX_LENGTH]


def sync_options_validate(options: Any, *, kind: str | None = None) -> dict[str, Any]:
    """The options as a dict, or a ValidationError naming every bad key."""
    problems = sync_option_problems(options, kind=kind)
    if problems:
        raise ValidationError(
            [f"Option '{key}' {message}" if key else f"Options {message}" for key, message in problems]
        )
    return dict(options or {})


def _target_field_taken(*, destination: Destination, target_field: str, exclude_pk: int | None) -> Sync | None:
    queryset = Sync.objects.filter(destination=destination, target_field=target_field)
    if exclude_pk is not None:
        queryset = queryset.exclude(pk=exclude_pk)
    return queryset.only("name").first()


def _target_field_taken_message(field: str, destination: Destination, other: Sync) -> str:
    return (
        f"The field '{field}' of {destination.name} is already written by the sync "
        f"'{other.name}'. Two syncs writing one field would overwrite each other: choose "
        "another field."
    )


class TargetFieldInput(forms.TextInput):
    """A text input tied to a datalist the change form fills with the destination's fields."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__({"list": TARGET_FIELD_DATALIST_ID, "autocomplete": "off", **(attrs or {})})


class SyncAdminForm(forms.ModelForm):
    class Meta:
        model = Sync
        fields = (
            "name",
            "cohort",
            "destination",
            "target_field",
            "identity_property",
            "mode",
            "interval_minutes",
            "enabled",
            "options",
        )
        widgets = {"target_field": TargetFieldInput()}
        field_classes = {"options": JSONValueField}
        help_texts = {
            "target_field": TARGET_FIELD_HELP,
            "identity_property": IDENTITY_HELP,
            "interval_minutes": INTERVAL_HELP,
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        destination = self.fields.get("destination")
        if destination is not None:
            # Listing destinations must not decrypt their secrets.
            destination.queryset = destination.queryset.defer("client_secret")
        interval = self.fields.get("interval_minutes")
        if interval is not None and self.instance.pk:
            default = self.instance.destination.default_interval_minutes
            interval.widget.attrs["placeholder"] = f"{default} (destination default)"

    def clean_target_field(self) -> str:
        return (self.cleaned_data.get("target_field") or "").strip()

    def clean_identity_property(self) -> str:
        return (self.cleaned_data.get("identity_property") or "").strip()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        # Frozen fields are not in the form; fall back to the instance's values.
        destination = cleaned.get("destination")
        if destination is None and "destination" not in self.fields and self.instance.pk:
            destination = self.instance.destination
        if "options" in cleaned:
            try:
                cleaned["options"] = sync_options_validate(
                    cleaned["options"], kind=destination.kind if destination else None
                )
            except ValidationError as exc:
                self.add_error("options", exc)
        target_field = cleaned.get("target_field", self.instance.target_field)
        if destination is not None and target_field:
            other = _target_field_taken(
                destination=destination, target_field=target_field, exclude_pk=self.instance.pk
            )
            if other is not None:
                message = _target_field_taken_message(target_field, destination, other)
                if "target_field" in self.fields:
                    self.add_error("target_field", message)
                else:
                    raise ValidationError(message)
        return cleaned

    def _get_validation_exclusions(self) -> set[str]:
        # clean() reports a field clash with a sentence naming the other sync; without this
        # the model's unique constraint would add a second, generic error.
        return {*super()._get_validation_exclusions(), "target_field"}


class ExportCohortsForm(forms.Form):
    """Step one of "Export to…": where and how; the per-cohort fields are added at runtime."""

    destination = forms.ModelChoiceField(
        queryset=Destination.objects.defer("client_secret").order_by("name"),
        help_text="The marketing platform account to export to.",
    )
    mode = forms.ChoiceField(
        choices=Sync.Mode.choices,
        initial=Sync.Mode.DYNAMIC,
        widget=forms.RadioSelect,
        help_text="One-time: export once now. Dynamic: export now, then keep the field in sync "
        "on a schedule (every 15 minutes for SFMC, 2 hours for Marketo).",
    )
    identity_property = forms.CharField(initial="$email", max_length=200, help_text=IDENTITY_HELP)

    def __init__(self, *args: Any, cohorts: Sequence[Cohort], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cohorts = list(cohorts)
        for cohort in self.cohorts:
            self.fields[self.target_field_name(cohort)] = forms.CharField(
                label=f"Target field for {cohort.name}",
                max_length=TARGET_FIELD_MAX_LENGTH,
                initial=target_field_suggest(cohort.name),
                widget=TargetFieldInput(),
            )

    @staticmethod
    def target_field_name(cohort: Cohort) -> str:
        return f"target_field_{cohort.pk}"

    def cohort_rows(self) -> list[tuple[Cohort, forms.BoundField]]:
        return [(cohort, self[self.target_field_name(cohort)]) for cohort in self.cohorts]

    def sync_name(self, cohort: Cohort, destination: Destination) -> str:
        return f"{cohort.name} → {destination.name}"

    def target_fields(self) -> dict[int, str]:
        return {
            cohort.pk: self.cleaned_data[self.target_field_name(cohort)].strip()
            for cohort in self.cohorts
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        destination: Destination | None = cleaned.get("destination")
        if destination is None:
            return cleaned
        cleaned["identity_property"] = (cleaned.get("identity_property") or "").strip()
        seen: dict[str, Cohort] = {}
        for cohort in self.cohorts:
            name = self.target_field_name(cohort)
            field = (cleaned.get(name) or "").strip()
            if not field:
                continue
            if field in seen:
                self.add_error(
                    name,
                    f"'{field}' is also the field for {seen[field].name}: each cohort needs its "
                    "own field.",
                )
                continue
            seen[field] = cohort
            other = _target_field_taken(destination=destination, target_field=field, exclude_pk=None)
            if other is not None:
                self.add_error(name, _target_field_taken_message(field, destination, other))
        names = {self.sync_name(cohort, destination): cohort for cohort in self.cohorts}
        for existing in Sync.objects.filter(name__in=list(names)).values_list("name", flat=True):
            self.add_error(
                self.target_field_name(names[existing]),
                f"A sync named '{existing}' already exists: this cohort is probably already "
                "exported to this destination. Open that sync instead, or rename it first.",
            )
        return cleaned
