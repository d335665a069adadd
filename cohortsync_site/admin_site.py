"""The admin site: Django's, plus one rule for every object URL of every model admin.

An object id in an admin URL that cannot be an id of the model (text where ids are
numbers, a number beyond the database's range, a NUL) answers 404 with a page that says
so, before any view runs. Django's own pages would redirect to the index and custom views
would crash with a 500 on the database lookup; this way every page, including the ones
apps add later, behaves the same. A view's own Http404 (a well-formed id of nothing, see
admin_object_or_404) gets the same page with its message.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver
from django.utils.text import Truncator

SHOWN_ID_CHARS = 60


def admin_object_id_is_valid(model: type[models.Model], object_id: str) -> bool:
    """Whether `object_id` (as it appears in an admin URL) can be a primary key of `model`."""
    field = model._meta.pk
    try:
        value = field.to_python(unquote(object_id))
        field.run_validators(value)
    except (ValidationError, ValueError, TypeError, OverflowError):
        return False
    return not (isinstance(value, str) and "\x00" in value)


def admin_object_or_404(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str) -> Any:
    """The object the user may see through this admin's queryset, or Http404."""
    obj = model_admin.get_object(request, unquote(object_id))
    if obj is None:
        shown = Truncator(object_id).chars(SHOWN_ID_CHARS)
        raise Http404(
            f"There is no {model_admin.opts.verbose_name} with the id “{shown}”: it may have been "
            "deleted, or the link is wrong."
        )
    return obj


class CohortSyncAdminSite(admin.AdminSite):
    def get_urls(self) -> list[URLPattern | URLResolver]:
        urls = super().get_urls()
        admins = {f"{model._meta.app_label}/{model._meta.model_name}/": model_admin
                  for model, model_admin in self._registry.items()}
        for entry in urls:
            model_admin = admins.get(str(entry.pattern)) if isinstance(entry, URLResolver) else None
            if model_admin is None:
                continue
            for pattern in entry.url_patterns:
                if isinstance(pattern, URLPattern) and "object_id" in pattern.pattern.converters:
                    pattern.callback = self._object_id_checked(model_admin, pattern.callback)
        return urls

    def _object_id_checked(self, model_admin: admin.ModelAdmin,
                           view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            object_id = kwargs.get("object_id")
            if isinstance(object_id, str) and not admin_object_id_is_valid(model_admin.model, object_id):
                if not self.has_permission(request):
                    # The login redirect comes first, as on every other admin page.
                    return self.admin_view(view)(request, *args, **kwargs)
                return self.object_not_found(request, model_admin, invalid_object_id_message(model_admin, object_id))
            try:
                return view(request, *args, **kwargs)
            except Http404 as exc:
                return self.object_not_found(request, model_admin, str(exc))

        return checked

    def object_not_found(self, request: HttpRequest, model_admin: admin.ModelAdmin, message: str) -> HttpResponse:
        """The admin's own 404 page, saying which object was not found and why."""
        opts = model_admin.opts
        context = {
            **self.each_context(request),
            "title": f"No such {opts.verbose_name}",
            "opts": opts,
            "message": message or f"There is no such {opts.verbose_name}.",
            "has_view_permission": model_admin.has_view_permission(request),
        }
        return TemplateResponse(request, "admin/object_not_found.html", context, status=404)


def invalid_object_id_message(model_admin: admin.ModelAdmin, object_id: str) -> str:
    opts = model_admin.opts
    shown = Truncator(object_id).chars(SHOWN_ID_CHARS)
    if isinstance(opts.pk, models.IntegerField):
        hint = f"Ids of {opts.verbose_name_plural} are whole numbers; the link may be cut or mistyped."
    else:
        hint = "The link may be cut or mistyped."
    return f"“{shown}” is not a valid id for a {opts.verbose_name}. {hint}"
