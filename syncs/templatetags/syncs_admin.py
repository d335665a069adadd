"""Template tags for the admin index's "Syncs" panel."""

from __future__ import annotations

from typing import Any

from django import template

from syncs.admin_display import dashboard_rows

register = template.Library()


@register.simple_tag(takes_context=True)
def syncs_dashboard(context: Any) -> dict[str, Any] | None:
    """The panel's rows, or None when the user may not see syncs."""
    request = context.get("request")
    if request is None or not request.user.has_perm("syncs.view_sync"):
        return None
    rows, more = dashboard_rows()
    return {"rows": rows, "more": more, "attention": sum(1 for row in rows if row.warning)}
