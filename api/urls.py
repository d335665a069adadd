from django.urls import path

from api.views import profile_view, profiles_view

app_name = "api"

urlpatterns = [
    path("profiles", profiles_view, name="profiles"),
    path("profiles/<path:distinct_id>", profile_view, name="profile"),
]
