"""Start-up checks for alert settings (shown by every manage.py command and the server)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Warning, register


@register()
def base_url_check(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    base = settings.COHORTSYNC_BASE_URL
    if base.startswith(("http://", "https://")):
        return []
    if not base and settings.DEBUG:
        return []
    return [
        Warning(
            "COHORTSYNC_BASE_URL is not an absolute URL: links in alerts cannot point at the run.",
            hint="Set it to the address staff open the admin at, e.g. https://cohortsync.example.com.",
            id="alerts.W001",
        )
    ]
