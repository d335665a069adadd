from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from api.views import endpoint_not_found_view
from health.views import healthz

admin.site.site_header = "CohortSync"
admin.site.site_title = "CohortSync"
admin.site.index_title = "Cohorts, destinations and syncs"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("api.urls")),
    re_path(r"^api/", endpoint_not_found_view),
    path("healthz", healthz, name="healthz"),
]
