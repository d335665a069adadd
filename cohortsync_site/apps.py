from django.contrib.admin.apps import AdminConfig


class CohortSyncAdminConfig(AdminConfig):
    """django.contrib.admin with CohortSync's site (malformed object ids are 404s)."""

    default_site = "cohortsync_site.admin_site.CohortSyncAdminSite"
