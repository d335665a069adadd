"""Admin forms for cohorts and profiles: parsing and validation only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from django import forms
from django.core.files.uploadedfile import UploadedFile

from cohorts.importing import distinct_ids_from_lines
from cohorts.models import Cohort, Profile
from cohorts.profile_rows import distinct_id_problem
from cohorts.rules import rules_problems
from cohorts.selectors import CohortShrink, cohort_shrink
from cohortsync_site.forms import JSONValueField

RULES_HELP = (
    'A group <code>{"all": [...]}</code> (every condition true) or <code>{"any": [...]}</code> '
    "(at least one true), holding conditions and nested groups. A condition is "
    '<code>{"property": "plan", "op": "eq", "value": "pro"}</code>. '
    "Ops: <code>eq</code>, <code>neq</code>, <code>in</code> / <code>not_in</code> (value is a "
    "list), <code>contains</code> (text substring, case-sensitive, or array element), "
    "<code>gt</code> / <code>gte</code> / <code>lt</code> / <code>lte</code> (numbers, or "
    "dates as <code>YYYY-MM-DD</code>), <code>is_set</code> / <code>is_not_set</code> (no value; "
    'null and "" count as not set), <code>within_last_days</code> (value N: an ISO date in the '
    "last N days, UTC), <code>more_than_days_ago</code> (value N: an ISO date before the last N "
    "days). <code>neq</code>, <code>not_in</code> and <code>is_not_set</code> include "
    "profiles that lack the property. Use <code>$distinct_id</code> for the profile's id. "
    '<code>{"all": []}</code> matches every profile.'
)
RULES_EXAMPLE = {
    "all": [
        {"property": "plan", "op": "in", "value": ["pro", "team"]},
        {
            "any": [
                {"property": "last_seen", "op": "within_last_days", "value": 30},
                {"property": "$email", "op": "contains", "value": "@example.com"},
            ]
        },
    ]
}


def invalid_json_message(exc: json.JSONDecodeError) -> str:
    return f"This is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."


class PrettyJSONField(JSONValueField):
    """A JSON textarea that shows indented JSON."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 14, "cols": 90, "class": "vLargeTextField", "spellcheck": "false"}))
        super().__init__(*args, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        if value is None:
            return ""
        return json.dumps(value, indent=2, ensure_ascii=False)


# The rule builder's operators, in words, with the value each one takes: "scalar" (text,
# a number or true/false), "list" (comma-separated), "text" (kept as text), "ordered" (a
# number or a YYYY-MM-DD date), "days" (a whole number) or "none".
RULE_OPS = [
    {"op": "eq", "label": "is", "value": "scalar"},
    {"op": "neq", "label": "is not", "value": "scalar"},
    {"op": "in", "label": "is one of", "value": "list"},
    {"op": "not_in", "label": "is none of", "value": "list"},
    {"op": "contains", "label": "contains", "value": "text"},
    {"op": "gt", "label": "is greater than", "value": "ordered"},
    {"op": "gte", "label": "is at least", "value": "ordered"},
    {"op": "lt", "label": "is less than", "value": "ordered"},
    {"op": "lte", "label": "is at most", "value": "ordered"},
    {"op": "is_set", "label": "is set", "value": "none"},
    {"op": "is_not_set", "label": "is not set", "value": "none"},
    {"op": "within_last_days", "label": "is within the last … days", "value": "days"},
    {"op": "more_than_days_ago", "label": "is more than … days ago", "value": "days"},
]

EMPTY_RULES_MESSAGE = 'A rules cohort needs rules. To include every profile, use {"all": []}.'
# Changing these may change who is a member.
DEFINITION_FIELDS = frozenset({"kind", "rules", "members_text", "members_file", "clear_members"})


class CohortForm(forms.ModelForm):
    rules = PrettyJSONField(
        label="Rules as JSON",
        required=False,
        help_text="What the builder above writes; edit either one. " + RULES_HELP,
        widget=forms.Textarea(
            attrs={
                "rows": 14,
                "cols": 90,
                "class": "vLargeTextField",
                "spellcheck": "false",
                "placeholder": json.dumps(RULES_EXAMPLE, indent=2),
            }
        ),
    )
    members_text = forms.CharField(
        label="Replace members with",
        required=False,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 60, "placeholder": "user-1\nuser-2"}),
        help_text="Distinct ids, one per line. When given, they replace the whole list. "
        "Leave empty to keep the current list.",
    )
    members_file = forms.FileField(
        label="…or upload a list",
        required=False,
        help_text="A text or CSV file with one distinct id per line (an optional distinct_id "
        "header line is skipped). Replaces the whole list.",
    )
    clear_members = forms.BooleanField(
        label="Remove every listed id", required=False
    )
    # Shown only when a save would empty or halve a cohort that dynamic syncs keep in sync.
    confirm_shrink = forms.BooleanField(required=False, label="Yes, save it")

    sql = forms.CharField(
        label="SQL",
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 90, "class": "vLargeTextField", "spellcheck": "false",
                                     "placeholder": "SELECT id AS distinct_id FROM accounts WHERE plan = 'team'"}),
        help_text=Cohort._meta.get_field("sql").help_text,
    )

    class Meta:
        model = Cohort
        fields = ("name", "kind", "description", "rules", "source", "sql")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Set by clean() when the save waits for confirm_shrink.
        self.shrink: CohortShrink | None = None

    def clean_rules(self) -> Any:
        rules = self.cleaned_data.get("rules")
        if rules is None:
            return None
        problems = rules_problems(rules)
        if problems:
            # Every problem, each naming its condition: fixing one at a time is slow.
            raise forms.ValidationError(
                [forms.ValidationError(problem, code="invalid_rules") for problem in problems]
            )
        return rules

    def clean_members_text(self) -> list[str] | None:
        text = self.cleaned_data.get("members_text") or ""
        if not text.strip():
            return None
        ids = list(distinct_ids_from_lines(text.splitlines()))
        _check_ids(ids)
        return ids

    def clean_members_file(self) -> UploadedFile | None:
        upload = self.cleaned_data.get("members_file")
        if upload:
            upload.seek(0)
            _check_ids(distinct_ids_from_lines(_lines(upload)))
        return upload

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        kind = cleaned.get("kind")
        given = [
            name
            for name in ("members_text", "members_file", "clear_members")
            if cleaned.get(name)
        ]
        if kind == Cohort.Kind.RULES:
            if "rules" in cleaned and cleaned.get("rules") is None and "rules" not in self.errors:
                self.add_error("rules", EMPTY_RULES_MESSAGE)
        if kind != Cohort.Kind.STATIC:
            for name in given:
                self.add_error(name, "Listed members apply only to static cohorts.")
        if kind == Cohort.Kind.SQL:
            self._clean_sql(cleaned)
        if len(given) > 1:
            raise forms.ValidationError(
                "Give the new member list one way only: typed, uploaded, or cleared."
            )
        if not self.errors and not cleaned.get("confirm_shrink"):
            self._check_shrink(cleaned)
        return cleaned

    def _check_shrink(self, cleaned: dict[str, Any]) -> None:
        """Ask for a confirmation before a save empties or halves a cohort that dynamic
        syncs keep in sync: their next run would remove those users from the destination."""
        self.shrink = cohort_shrink(
            cohort=self.instance,
            kind=cleaned.get("kind"),
            rules=cleaned.get("rules"),
            new_static_ids=self.static_member_ids(),
            definition_changed=bool(DEFINITION_FIELDS & set(self.changed_data)),
        )
        if self.shrink is not None:
            raise forms.ValidationError(self.shrink.message, code="shrink_unconfirmed")

    def _clean_sql(self, cleaned: dict[str, Any]) -> None:
        # Local import: sources depends on cohorts for its import row path.
        from sources.validation import SettingError, sql_clean

        if not cleaned.get("source") and "source" not in self.errors:
            self.add_error("source", "An SQL cohort needs the source its query runs on.")
        try:
            cleaned["sql"] = sql_clean(cleaned.get("sql") or "")
        except SettingError as exc:
            self.add_error("sql", str(exc))

    def static_member_ids(self) -> Iterator[str] | None:
        """The replacement list, streamed; None when the list should stay as it is."""
        if self.cleaned_data.get("clear_members"):
            return iter(())
        if self.cleaned_data.get("members_text"):
            return iter(self.cleaned_data["members_text"])
        upload = self.cleaned_data.get("members_file")
        if upload:
            upload.seek(0)
            return distinct_ids_from_lines(_lines(upload))
        return None


def _lines(upload: UploadedFile) -> Iterator[bytes]:
    return iter(upload.readline, b"")


def _check_ids(ids: Any) -> None:
    for position, distinct_id in enumerate(ids, start=1):
        problem = distinct_id_problem(distinct_id, label=f"Id number {position}")
        if problem:
            raise forms.ValidationError(f"{problem}.")


class ProfileForm(forms.ModelForm):
    properties = PrettyJSONField(
        required=False,
        help_text='A JSON object, e.g. {"$email": "ana@example.com", "plan": "pro"}. Dates as '
        "ISO-8601 text in UTC.",
    )

    class Meta:
        model = Profile
        fields = ("distinct_id", "properties")

    def clean_properties(self) -> dict[str, Any]:
        value = self.cleaned_data.get("properties")
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError("Properties must be a JSON object {...}.")
        return value


class ProfileImportForm(forms.Form):
    file = forms.FileField(
        help_text="CSV with a header row and a distinct_id column, or JSON Lines with "
        '{"distinct_id": ..., "properties": {...}} per line. UTF-8.'
    )
    file_format = forms.ChoiceField(
        label="Format",
        choices=[("", "Detect from the file"), ("csv", "CSV"), ("jsonl", "JSON Lines")],
        required=False,
    )
