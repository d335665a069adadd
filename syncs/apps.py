from django.apps import AppConfig


class SyncsConfig(AppConfig):
    name = "syncs"
    verbose_name = "Syncs and run history"
