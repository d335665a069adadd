"""Helpers shared by the sync admin tests: logged-in staff with chosen permissions."""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.factories import UserFactory


def staff_client(perms: Iterable[str] = ()) -> Client:
    """A client logged in as a staff user (not a superuser) with exactly these permissions.

    Permissions are "app_label.codename", e.g. "syncs.view_sync".
    """
    user = UserFactory(is_staff=True, is_superuser=False)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    client = Client()
    client.force_login(user)
    return client


def messages_of(response: HttpResponse) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def action_names(response: HttpResponse) -> list[str]:
    """The actions offered in a changelist's action dropdown."""
    form = response.context["action_form"]
    if form is None:
        return []
    return [name for name, _ in form.fields["action"].choices if name]


def count_queries_on(context: CaptureQueriesContext, table: str) -> list[str]:
    """The captured queries that COUNT rows of `table`."""
    quoted = re.escape(table)
    pattern = re.compile(rf"COUNT\(.*\bFROM\s+[\"`]?{quoted}[\"`]?", re.IGNORECASE | re.DOTALL)
    return [q["sql"] for q in context.captured_queries if pattern.search(q["sql"])]


def capture_queries() -> CaptureQueriesContext:
    return CaptureQueriesContext(connection)
