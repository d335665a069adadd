"""`{% alerts_stale_check %}` on the admin index: a page load runs the (throttled) stale
check, so syncs stopped with the task cluster are noticed by the web process."""

from __future__ import annotations

import logging

from django import template

from alerts.services import alerts_stale_check_from_dashboard

register = template.Library()
logger = logging.getLogger(__name__)


@register.simple_tag
def alerts_stale_check() -> str:
    try:
        alerts_stale_check_from_dashboard()
    except Exception as exc:  # the admin index must render whatever happens here
        logger.error("Could not start the stale check (%s)", type(exc).__name__)
    return ""
