"""Import runs are pruned with sync runs: old ones go, each import's last run stays."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from sources.models import ImportRun, ImportRunStatus
from sources.services import import_runs_prune
from syncs.tasks import prune_runs
from tests.factories import ProfileImportFactory

pytestmark = pytest.mark.django_db


def _run(profile_import, *, days_ago: int, status: str = ImportRunStatus.SUCCEEDED) -> ImportRun:  # type: ignore[no-untyped-def]
    run = ImportRun.objects.create(profile_import=profile_import, trigger=ImportRun.Trigger.SCHEDULE, status=status)
    ImportRun.objects.filter(pk=run.pk).update(created_at=timezone.now() - dt.timedelta(days=days_ago))
    return run


def test_old_import_runs_are_pruned_but_each_imports_last_run_is_kept(settings) -> None:
    settings.COHORTSYNC_RUN_RETENTION_DAYS = 30
    busy, quiet = ProfileImportFactory(), ProfileImportFactory()
    old = _run(busy, days_ago=40)
    _run(busy, days_ago=35, status=ImportRunStatus.FAILED)
    recent = _run(busy, days_ago=1)
    only = _run(quiet, days_ago=90)

    assert import_runs_prune() == 2

    assert set(ImportRun.objects.values_list("pk", flat=True)) == {recent.pk, only.pk}
    assert not ImportRun.objects.filter(pk=old.pk).exists()
    assert prune_runs()["deleted_import_runs"] == 0
