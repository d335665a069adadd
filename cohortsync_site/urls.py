from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from health.views import healthz

admin.site.site_header = "CohortSync"
admin.site.site_title = "CohortSync"
admin.site.index_title = "Cohorts, destinations and syncs"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("api.urls")),
    path("healthz", healthz, name="healthz"),
]
