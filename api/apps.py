from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "Profile ingestion API"
