from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from health.selectors import health_report


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database, the broker and a task cluster are alive, 503 naming what is not.

    Open to anyone (load balancers, supervisors): it shows no configuration and no secret.
    """
    report = health_report()
    return JsonResponse(report.as_dict(), status=200 if report.ok else 503)
