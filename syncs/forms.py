"""Admin forms for syncs: the sync form and the "Export to…" form."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from cohorts.models import Cohort
from cohortsync_site.forms import JSONValueField
from destinations.kinds import kind_spec, kind_specs
from destinations.models import Destination
from syncs.models import DISTINCT_ID_IDENTITY, Sync
from syncs.options import ENGINE_OPTIONS, sync_option_problems

TARGET_FIELD_DATALIST_ID = "target-field-choices"
TARGET_FIELD_MAX_LENGTH = Sync._meta.get_field("target_field").max_length or 200
# Column, attribute and Marketo API names: letters, digits and underscores, starting with
# a letter. Stricter than some platforms allow, but accepted by all three.
_TARGET_FIELD_SAFE_RE = re.compile(r"[^0-9A-Za-z]+")



def _per_kind(describe: dict[str, str]) -> str:
    """'a for SFMC data extension and SFMC contacts, b for Marketo': kinds grouped by value."""
    kinds: dict[str, list[str]] = {}
    for spec in kind_specs():
        kinds.setdefault(describe[spec.kind], []).append(spec.short_label)
    return ", ".join(f"{value} for {' and '.join(labels)}" for value, labels in kinds.items())


TARGET_FIELD_HELP = "Where membership is written. " + " ".join(spec.target_help for spec in kind_specs())
IDENTITY_HELP = (
    "Profile property whose value identifies the user in the destination, e.g. $email, or "
    f"{DISTINCT_ID_IDENTITY} for the profile's distinct id. Empty on a new sync: the "
    f"destination's default ({_per_kind({s.kind: s.default_identity for s in kind_specs()})})."
)
INTERVAL_HELP = (
    "Dynamic syncs only. Leave empty for the destination's default: "
    f"{_per_kind({s.kind: f'{s.default_interval_minutes} minutes' for s in kind_specs()})}."
)
OPTIONS_HELP = "Per-sync options: " + "; ".join(
    [", ".join(o.name for o in ENGINE_OPTIONS) + " (every destination)"]
    + [f"{', '.join(o.name for o in s.sync_options)} ({s.short_label})" for s in kind_specs() if s.sync_options]
) + "."


def identity_or_default(identity_property: str, destination: Destination) -> str:
    """The identity property as given, or the destination kind's default for new syncs."""
    return identity_property.strip() or kind_spec(destination.kind).default_identity

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
            "options": OPTIONS_HELP,
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
        identity = self.fields.get("identity_property")
        if identity is not None and self.instance.pk is None:
            # A new sync takes its destination kind's default identity unless one is given.
            identity.required = False
            self.initial["identity_property"] = ""
            identity.widget.attrs["placeholder"] = "the destination's default"

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
        if destination is not None and "identity_property" in self.fields and self.instance.pk is None:
            cleaned["identity_property"] = identity_or_default(cleaned.get("identity_property") or "", destination)
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
        "on the destination's schedule "
        f"({_per_kind({s.kind: f'every {s.default_interval_minutes} minutes' for s in kind_specs()})}).",
    )
    identity_property = forms.CharField(
        required=False, max_length=200, help_text=IDENTITY_HELP,
        widget=forms.TextInput(attrs={"placeholder": "the destination's default"}),
    )

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
        cleaned["identity_property"] = identity_or_default(cleaned.get("identity_property") or "", destination)
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
