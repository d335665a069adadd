"""Admin forms for syncs: the sync form and the "Export to…" form."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from cohorts.models import Cohort
from cohortsync_site.forms import JSONValueField
from destinations.base import SyncTarget, TargetCheck
from destinations.kinds import kind_spec, kind_specs
from destinations.models import Destination
from destinations.services import destination_targets_check
from syncs.models import DISTINCT_ID_IDENTITY, Sync
from syncs.options import ENGINE_OPTIONS, sync_option_problems
from syncs.targets import field_taken_message, sync_field_owner

TARGET_FIELD_DATALIST_ID = "target-field-choices"
# Editing these makes the form ask the destination about the target field again.
TARGET_CHECK_FIELDS = frozenset({"destination", "target_field", "options"})
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


def sync_options_validate(
    options: Any, *, kind: str | None = None, mode: str | None = None
) -> dict[str, Any]:
    """The options as a dict, or a ValidationError naming every bad key."""
    problems = sync_option_problems(options, kind=kind, mode=mode)
    if problems:
        raise ValidationError(
            [f"Option '{key}' {message}" if key else f"Options {message}" for key, message in problems]
        )
    return dict(options or {})


class TargetFieldInput(forms.TextInput):
    """A text input tied to a datalist the change form fills with the destination's fields."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__({"list": TARGET_FIELD_DATALIST_ID, "autocomplete": "off", **(attrs or {})})


class SyncAdminForm(forms.ModelForm):
    """The sync form. Beyond the model's rules (one field per destination account, frozen
    fields, no interval on a one-time export), a new or changed target field is checked
    against the destination before saving: see `target_check`."""

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
        # What the destination said about the target field on save (None: not asked).
        self.target_check: TargetCheck | None = None
        destination = self.fields.get("destination")
        if destination is not None:
            # Listing destinations must not decrypt their secrets.
            destination.queryset = destination.queryset.defer("client_secret")
        interval = self.fields.get("interval_minutes")
        if interval is not None:
            # Only the number: the input is narrow, and the help text says what it means.
            interval.widget.attrs["placeholder"] = (
                str(self.instance.destination.default_interval_minutes) if self.instance.pk else ""
            )
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
        destination = self._destination(cleaned)
        if destination is not None and "identity_property" in self.fields and self.instance.pk is None:
            cleaned["identity_property"] = identity_or_default(cleaned.get("identity_property") or "", destination)
        if "options" in cleaned:
            try:
                cleaned["options"] = sync_options_validate(
                    cleaned["options"],
                    kind=destination.kind if destination else None,
                    mode=cleaned.get("mode"),
                )
            except ValidationError as exc:
                self.add_error("options", exc)
        return cleaned

    def _destination(self, cleaned: dict[str, Any]) -> Destination | None:
        # Frozen fields are not in the form; fall back to the instance's values.
        if "destination" in self.fields:
            return cleaned.get("destination")
        return self.instance.destination if self.instance.pk else None

    def _post_clean(self) -> None:
        super()._post_clean()
        # Last, so the destination is asked only about a sync that is otherwise valid.
        if not self.errors and self._target_needs_check():
            self._check_target()

    def _target_needs_check(self) -> bool:
        if "target_field" not in self.fields:
            return False  # frozen: checked when it was set, and by every run
        if self.instance._state.adding:
            return True
        return bool(TARGET_CHECK_FIELDS & set(self.changed_data))

    def _check_target(self) -> None:
        sync = self.instance
        [check] = destination_targets_check(
            destination=sync.destination,
            targets=[
                SyncTarget(
                    field=sync.target_field,
                    identity_property=sync.identity_property,
                    options=dict(sync.options or {}),
                )
            ],
        )
        self.target_check = check
        if check.refused:
            self.add_error("target_field", check.message)

    def _get_validation_exclusions(self) -> set[str]:
        # The model's clean() reports a field clash with a sentence naming the other sync;
        # without this the unique constraint would add a second, generic error.
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
        # What the destination said about each cohort's field, by cohort id.
        self.target_checks: dict[int, TargetCheck] = {}
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
            if field.lower() in seen:
                self.add_error(
                    name,
                    f"'{field}' is also the field for {seen[field.lower()].name}: each cohort needs "
                    "its own field.",
                )
                continue
            seen[field.lower()] = cohort
            owner = sync_field_owner(
                destination=destination, destination_id=destination.pk, target_field=field
            )
            if owner is not None:
                self.add_error(
                    name,
                    field_taken_message(
                        field=field, destination=destination, destination_name=destination.name,
                        owner=owner,
                    ),
                )
        names = {self.sync_name(cohort, destination): cohort for cohort in self.cohorts}
        for existing in Sync.objects.filter(name__in=list(names)).values_list("name", flat=True):
            self.add_error(
                self.target_field_name(names[existing]),
                f"A sync named '{existing}' already exists: this cohort is probably already "
                "exported to this destination. Open that sync instead, or rename it first.",
            )
        if not self.errors:
            self._check_targets(destination, cleaned["identity_property"])
        return cleaned

    def _check_targets(self, destination: Destination, identity_property: str) -> None:
        """Ask the destination about every cohort's field at once (one schema read)."""
        fields = self.target_fields()
        checks = destination_targets_check(
            destination=destination,
            targets=[
                SyncTarget(field=fields[cohort.pk], identity_property=identity_property)
                for cohort in self.cohorts
            ],
        )
        self.target_checks = dict(zip([cohort.pk for cohort in self.cohorts], checks, strict=True))
        for cohort, check in zip(self.cohorts, checks, strict=True):
            if check.refused:
                self.add_error(self.target_field_name(cohort), check.message)
