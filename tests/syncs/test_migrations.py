"""Data migrations of the syncs app, run against today's models."""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.db import connection

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_whoever_could_approve_through_manage_run_keeps_approving() -> None:
    migration = importlib.import_module("syncs.migrations.0008_approve_run_permission")
    Permission.objects.filter(codename="approve_run").delete()
    manage = Permission.objects.get(codename="manage_run")
    manage.name = "Can cancel, retry and approve runs"
    manage.save()
    manager, bystander = UserFactory(), UserFactory()
    manager.user_permissions.add(manage)
    night_shift = Group.objects.create(name="Night shift")
    night_shift.permissions.add(manage)

    migration.grant_approve_run_to_run_managers(apps, SimpleNamespace(connection=connection))

    approve = Permission.objects.get(codename="approve_run")
    assert approve in manager.user_permissions.all()
    assert approve in night_shift.permissions.all()
    assert approve not in bystander.user_permissions.all()
    assert Permission.objects.get(codename="manage_run").name == "Can cancel, retry and reject runs"
