"""Template tags for the admin index's "Syncs" panel and the run page."""

from __future__ import annotations

from typing import Any

from django import template

from syncs.admin_display import dashboard_rows
from syncs.selectors import RECENT_RUNS

register = template.Library()


@register.filter
def count(value: Any) -> str:
    """A count with thousands separators: 1,234,567."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return str(value)


@register.simple_tag(takes_context=True)
def syncs_dashboard(context: Any) -> dict[str, Any] | None:
    """The panel's rows, or None when the user may not see syncs."""
    request = context.get("request")
    if request is None or not request.user.has_perm("syncs.view_sync"):
        return None
    rows, more = dashboard_rows()
    return {
        "rows": rows,
        "more": more,
        "attention": sum(1 for row in rows if row.warning),
        "history_runs": RECENT_RUNS,
    }
