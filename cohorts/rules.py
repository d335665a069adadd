"""Cohort rule language (placeholder until the cohorts work lands: only 'eq' and nesting)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q


def rules_to_q(rules: dict[str, Any]) -> Q:
    if "all" in rules or "any" in rules:
        key = "all" if "all" in rules else "any"
        q = Q()
        for child in rules[key]:
            q = (q & rules_to_q(child)) if key == "all" else (q | rules_to_q(child))
        return q
    return Q(**{f"properties__{rules['property']}": rules["value"]})
