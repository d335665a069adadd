"""The cohort editor's live preview: rules in, every problem or a count and a sample out.

Called by the rule builder's script (static/cohorts/rule_builder.js), debounced in the
browser. Each answer is at most two queries through the rule compiler (a count and the
first members by distinct id), each held to PREVIEW_TIME_LIMIT_SECONDS on PostgreSQL, and
one preview per user runs at a time: a million profiles stay a few queries a second.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from django.urls import reverse

from cohorts.forms import EMPTY_RULES_MESSAGE, invalid_json_message
from cohorts.rules import rules_problems
from cohorts.selectors import EMAIL_PROPERTY, profiles_matching
from cohortsync_site.database import QueryTooSlow, statement_time_limit
from cohortsync_site.json_values import JSONValueError, json_loads
from cohortsync_site.text import count_of

PREVIEW_TIME_LIMIT_SECONDS = 10
PREVIEW_SAMPLE_SIZE = 10


def rules_preview_json(request: HttpRequest, *, show_members: bool) -> JsonResponse:
    """POST `rules` (the JSON text being edited) -> {"ok": true, "count", "message",
    "sample"} or {"ok": false, "errors": [every problem]}; 429 while the same user's
    previous preview still runs. `show_members`: the sample lists ids and emails."""
    problems, rules = _parse(request.POST.get("rules", ""))
    if problems:
        return JsonResponse({"ok": False, "errors": problems})
    lock = f"cohorts:rules-preview:{request.user.pk}"
    if not cache.add(lock, 1, timeout=PREVIEW_TIME_LIMIT_SECONDS * 3):
        return JsonResponse(
            {"ok": False, "busy": True, "errors": [], "message": "Still counting the previous rules."},
            status=429,
        )
    try:
        with statement_time_limit(PREVIEW_TIME_LIMIT_SECONDS):
            members = profiles_matching(rules)
            count = members.count()
            sample = _sample(members) if show_members and count else []
    except QueryTooSlow:
        return JsonResponse(
            {
                "ok": False,
                "errors": [],
                "message": f"Counting took longer than {PREVIEW_TIME_LIMIT_SECONDS} s, so there is "
                "no live count for these rules. They are valid: save to see the members.",
            }
        )
    finally:
        cache.delete(lock)
    noun = count_of(count, "profile")
    return JsonResponse(
        {
            "ok": True,
            "count": count,
            "message": f"{noun} {'matches' if count == 1 else 'match'} these rules right now.",
            "sample": sample,
        }
    )


def _parse(text: str) -> tuple[list[str], Any]:
    if not text.strip():
        return [EMPTY_RULES_MESSAGE], None
    try:
        rules = json_loads(text)
    except JSONValueError as exc:
        return [f"{exc}."], None
    except json.JSONDecodeError as exc:
        return [invalid_json_message(exc)], None
    return rules_problems(rules), rules


def _sample(members: Any) -> list[dict[str, str]]:
    rows = members.order_by("distinct_id").values_list("pk", "distinct_id", "properties")
    return [
        {
            "distinct_id": distinct_id,
            "email": _email(properties),
            "url": reverse("admin:cohorts_profile_change", args=[pk]),
        }
        for pk, distinct_id, properties in rows[:PREVIEW_SAMPLE_SIZE]
    ]


def _email(properties: Any) -> str:
    value = properties.get(EMAIL_PROPERTY) if isinstance(properties, dict) else None
    return value if isinstance(value, str) else ""
