"""django-q2's scheduled tasks, in words: which sync or chore, how often, a link to the sync."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django_q.models import Schedule

from syncs.admin_schedules import schedule_interval_words
from syncs.schedules import housekeeping_schedules_ensure, sync_schedule_name
from syncs.services import sync_schedule_update
from tests.factories import DestinationFactory, SyncFactory
from tests.syncs.admin_helpers import staff_client

pytestmark = pytest.mark.django_db

SCHEDULES = reverse("admin:django_q_schedule_changelist")


def test_interval_words() -> None:
    assert schedule_interval_words(Schedule.MINUTES, 15) == "every 15 minutes"
    assert schedule_interval_words(Schedule.MINUTES, 1) == "every minute"
    assert schedule_interval_words(Schedule.MINUTES, 120) == "every 2 hours"
    assert schedule_interval_words(Schedule.MINUTES, 60) == "every hour"
    assert schedule_interval_words(Schedule.DAILY, None) == "daily"


def test_each_schedule_says_what_it_runs_and_how_often(admin_client) -> None:
    sync = SyncFactory(name="Pro → Marketo", destination=DestinationFactory(marketo=True))
    sync_schedule_update(sync=sync)
    housekeeping_schedules_ensure()
    Schedule.objects.create(name=sync_schedule_name(99999), func="syncs.tasks.run_scheduled_sync",
                            schedule_type=Schedule.MINUTES, minutes=15)

    page = admin_client.get(SCHEDULES).content.decode()

    link = reverse("admin:syncs_sync_change", args=[sync.pk])
    assert f'Sync “<a href="{link}">Pro → Marketo</a>”' in page
    assert "every 2 hours" in page
    assert "Delete runs older than the retention period" in page
    assert "A sync that no longer exists" in page


def test_without_sync_permission_the_sync_is_named_without_a_link() -> None:
    sync = SyncFactory(name="Pro → SFMC")
    sync_schedule_update(sync=sync)
    client = staff_client(["django_q.view_schedule"])

    page = client.get(SCHEDULES).content.decode()

    assert "Sync “Pro → SFMC”" in page
    assert reverse("admin:syncs_sync_change", args=[sync.pk]) not in page
