"""Form fields shared by every app's admin."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from cohortsync_site.json_values import JSONValueError, json_loads, json_value_check


class JSONValueField(forms.JSONField):
    """forms.JSONField that says where invalid JSON breaks, and refuses what the database
    cannot store (NaN, Infinity, NUL, lone surrogates, integers beyond 64 bits, deep
    nesting) with a message naming where, instead of a 500 on save or when the page is
    shown again. Every JSON field of the admin uses it (tests/bad_input/test_admin_forms.py
    checks that)."""

    def to_python(self, value: Any) -> Any:
        if self.disabled or value in self.empty_values or not isinstance(value, str):
            converted = super().to_python(value)
        else:
            try:
                converted = json_loads(value, cls=self.decoder)
            except JSONValueError as exc:
                raise forms.ValidationError(f"{exc}.", code="invalid") from None
            except json.JSONDecodeError as exc:
                raise forms.ValidationError(
                    "This is not valid JSON: %(problem)s at line %(line)s, column %(column)s.",
                    code="invalid",
                    params={"problem": exc.msg, "line": exc.lineno, "column": exc.colno},
                ) from None
            if isinstance(converted, str):
                converted = forms.fields.JSONString(converted)
        if not self.disabled:
            try:
                json_value_check(converted)
            except JSONValueError as exc:
                raise forms.ValidationError(f"{exc}.", code="invalid") from None
        return converted

    def bound_data(self, data: Any, initial: Any) -> Any:
        # Shown again as typed when it cannot be stored: rendering the parsed value could
        # put a lone surrogate into the page, which cannot be encoded.
        if self.disabled or data is None:
            return super().bound_data(data, initial)
        try:
            parsed = json_loads(data, cls=self.decoder)
            json_value_check(parsed)
        except ValueError:
            return forms.fields.InvalidJSONInput(data)
        return parsed
