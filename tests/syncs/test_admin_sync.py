"""The sync admin: list, form, frozen fields, schedules following edits, target field hints."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from destinations.base import ConnectionReport, FieldInfo
from destinations.errors import AuthenticationError
from destinations.models import Destination
from syncs.models import RunStatus, Sync
from syncs.schedules import sync_schedule_name
from syncs.selectors import sync_next_run_at
from tests.destinations.destadmin_fakes import fake_connector
from tests.factories import (
    CohortFactory,
    DestinationFactory,
    SyncedMemberFactory,
    SyncFactory,
    SyncRunFactory,
)
from tests.syncs.admin_helpers import messages_of

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:syncs_sync_changelist")
ADD = reverse("admin:syncs_sync_add")


@pytest.fixture(autouse=True)
def destination_fields():
    """Saving a sync asks its destination about the target field: answer without a network."""
    fields = (FieldInfo(name="Pro_users", label="Pro_users", type="Boolean", is_target_compatible=True),)
    with fake_connector(ConnectionReport(ok=True, summary="", fields=fields)):
        yield


def change_url(sync: Sync) -> str:
    return reverse("admin:syncs_sync_change", args=[sync.pk])


def form_data(sync: Sync | None = None, **overrides) -> dict:
    data = {
        "name": "Pro users → SFMC",
        "cohort": CohortFactory().pk if sync is None else sync.cohort_id,
        "destination": DestinationFactory().pk if sync is None else sync.destination_id,
        "target_field": "Pro_users",
        "identity_property": "$distinct_id",
        "mode": Sync.Mode.DYNAMIC,
        "interval_minutes": "",
        "enabled": "on",
        "options": "{}",
    }
    if sync is not None:
        data.update(
            name=sync.name, target_field=sync.target_field, identity_property=sync.identity_property,
            mode=sync.mode, interval_minutes=sync.interval_minutes or "",
            enabled="on" if sync.enabled else "",
        )
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_changelist_shows_last_run_and_next_run(admin_client, django_assert_max_num_queries):
    sync = SyncFactory(name="Pro users")
    run = SyncRunFactory(sync=sync, status=RunStatus.PARTIAL, finished_at=timezone.now())
    Schedule.objects.create(
        name=sync_schedule_name(sync.pk), func="syncs.tasks.run_scheduled_sync",
        schedule_type=Schedule.MINUTES, minutes=15, next_run=timezone.now() + dt.timedelta(minutes=10),
    )
    one_time = SyncFactory(name="Launch list", mode=Sync.Mode.ONE_TIME)
    SyncFactory.create_batch(5)

    with django_assert_max_num_queries(12):
        response = admin_client.get(CHANGELIST)

    page = response.content.decode().replace("\xa0", " ")
    assert response.status_code == 200
    assert reverse("admin:syncs_syncrun_change", args=[run.pk]) in page
    assert "Partially failed" in page
    assert "in 9 minutes" in page or "in 10 minutes" in page
    assert "Never run" in page
    rows = {s.pk: s for s in response.context["cl"].result_list}
    assert rows[one_time.pk].next_run_at is None


def test_changelist_filters_by_last_run_status_and_searches_cohort(admin_client):
    failed = SyncFactory(cohort=CohortFactory(name="Churn risk"))
    SyncRunFactory(sync=failed, status=RunStatus.FAILED)
    ok = SyncFactory()
    SyncRunFactory(sync=ok, status=RunStatus.SUCCEEDED)
    never = SyncFactory()

    by_status = admin_client.get(CHANGELIST, {"last_run": "failed"})
    by_never = admin_client.get(CHANGELIST, {"last_run": "never"})
    by_search = admin_client.get(CHANGELIST, {"q": "churn"})

    assert [s.pk for s in by_status.context["cl"].result_list] == [failed.pk]
    assert [s.pk for s in by_never.context["cl"].result_list] == [never.pk]
    assert [s.pk for s in by_search.context["cl"].result_list] == [failed.pk]


def test_add_form_explains_fields_and_defaults(admin_client):
    page = admin_client.get(ADD).content.decode()

    assert "Boolean column" in page and "text attribute" in page and "REST API name" in page
    # Each kind's default identity and interval, from the kinds' specs.
    assert "$distinct_id for SFMC data extension and SFMC contacts, $email for Marketo" in page
    assert "15 minutes for SFMC data extension and SFMC contacts, 120 minutes for Marketo" in page
    assert 'list="target-field-choices"' in page


def test_add_form_is_prefilled_from_the_query_string(admin_client):
    cohort, destination = CohortFactory(), DestinationFactory()

    response = admin_client.get(ADD, {"cohort": cohort.pk, "destination": destination.pk})

    initial = response.context["adminform"].form.initial
    assert str(initial["cohort"]) == str(cohort.pk)
    assert str(initial["destination"]) == str(destination.pk)


def test_saving_a_dynamic_sync_schedules_it(admin_client, django_capture_on_commit_callbacks, admin_user):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(ADD, form_data(interval_minutes="30"))

    assert response.status_code == 302, response.context["adminform"].form.errors
    sync = Sync.objects.get(name="Pro users → SFMC")
    assert sync.created_by == admin_user
    schedule = Schedule.objects.get(name=sync_schedule_name(sync.pk))
    assert schedule.minutes == 30

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(change_url(sync), form_data(sync, enabled=""))

    assert sync_next_run_at(sync) is None


def test_target_field_used_by_another_sync_is_refused(admin_client):
    other = SyncFactory(name="Existing", target_field="Pro_users")

    response = admin_client.post(ADD, form_data(destination=other.destination_id, target_field="Pro_users"))

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "already written by the sync 'Existing'" in errors["target_field"][0]
    assert Sync.objects.count() == 1


def test_options_are_checked_for_the_destination_kind(admin_client):
    marketo = DestinationFactory(marketo=True)

    response = admin_client.post(
        ADD, form_data(destination=marketo.pk, identity_property="$email",
                       options='{"member_value": "yes"}'),
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["options"]
    assert "applies only to SFMC contacts destinations" in errors[0]

    response = admin_client.post(ADD, form_data(options='{"removal_guard_ratio": 3}'))
    assert "at most 1" in response.context["adminform"].form.errors["options"][0]


def test_frozen_sync_shows_fields_readonly_with_note(admin_client):
    sync = SyncFactory(target_field="Pro_users", identity_property="$email")
    SyncedMemberFactory(sync=sync)

    response = admin_client.get(change_url(sync))

    page = response.content.decode()
    form = response.context["adminform"].form
    assert "target_field" not in form.fields
    assert "identity_property" not in form.fields
    assert "destination" not in form.fields
    assert "would orphan those users" in page
    assert "Create a new sync instead" in page
    assert f"cohort={sync.cohort_id}&amp;destination={sync.destination_id}" in page

    # Posting a new value anyway changes nothing.
    response = admin_client.post(change_url(sync), form_data(sync, target_field="Other", name="Renamed"))
    assert response.status_code == 302
    sync.refresh_from_db()
    assert (sync.name, sync.target_field, sync.identity_property) == ("Renamed", "Pro_users", "$email")


def test_sync_without_acknowledged_users_stays_editable(admin_client):
    sync = SyncFactory()

    response = admin_client.get(change_url(sync))

    assert "target_field" in response.context["adminform"].form.fields
    assert "Create a new sync instead" not in response.content.decode()


def test_target_field_suggestions_come_from_the_destination(admin_client):
    destination = DestinationFactory()
    url = reverse("admin:syncs_sync_target_fields")
    fields = (
        FieldInfo(name="SubscriberKey", label="SubscriberKey", type="Text", is_target_compatible=False),
        FieldInfo(name="Cohort_Pro", label="Cohort Pro", type="Boolean", is_target_compatible=True),
    )

    with fake_connector(ConnectionReport(ok=True, summary="", fields=fields)):
        data = admin_client.get(url, {"destination": destination.pk}).json()
    assert data["ok"] is True
    assert [f["name"] for f in data["fields"]] == ["Cohort_Pro", "SubscriberKey"]

    broken = DestinationFactory()
    with fake_connector(AuthenticationError("Credentials refused")):
        data = admin_client.get(url, {"destination": broken.pk}).json()
    assert data["ok"] is False
    assert "type the field name" in data["message"]


def test_enable_and_disable_dynamic_sync(admin_client, django_capture_on_commit_callbacks):
    dynamic = SyncFactory(enabled=False)
    one_time = SyncFactory(mode=Sync.Mode.ONE_TIME)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            CHANGELIST,
            {"action": "enable_dynamic_sync", "_selected_action": [dynamic.pk, one_time.pk]},
            follow=True,
        )

    dynamic.refresh_from_db()
    assert dynamic.enabled is True
    assert sync_next_run_at(dynamic) is not None
    text = " ".join(messages_of(response))
    assert "Dynamic sync enabled" in text
    assert "one-time exports have no schedule" in text

    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(CHANGELIST, {"action": "disable_dynamic_sync", "_selected_action": [dynamic.pk]})
    dynamic.refresh_from_db()
    assert dynamic.enabled is False
    assert sync_next_run_at(dynamic) is None


def test_pages_work_when_a_destination_secret_cannot_be_decrypted(admin_client):
    """A lost encryption key must not take the sync pages down with it."""
    sync = SyncFactory()
    run = SyncRunFactory(sync=sync, status=RunStatus.FAILED)
    table = Destination._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET client_secret = %s WHERE id = %s", ["not-a-token", sync.destination_id])

    for url in (
        CHANGELIST,
        change_url(sync),
        ADD,
        reverse("admin:syncs_syncrun_change", args=[run.pk]),
        reverse("admin:syncs_syncrun_changelist"),
        reverse("admin:index"),
    ):
        assert admin_client.get(url).status_code == 200, url


@pytest.mark.parametrize(("kind", "expected"), [
    ({}, "$distinct_id"), ({"contacts": True}, "$distinct_id"), ({"marketo": True}, "$email"),
])
def test_a_new_sync_left_without_an_identity_takes_its_destination_kinds_default(admin_client, kind, expected):
    destination = DestinationFactory(**kind)
    assert admin_client.get(ADD).context["adminform"].form["identity_property"].value() in ("", None)

    response = admin_client.post(ADD, form_data(destination=destination.pk, identity_property=""))

    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Sync.objects.get().identity_property == expected


def test_a_sync_page_shows_its_acknowledged_members_estimated_when_there_are_millions(admin_client, monkeypatch):
    sync = SyncFactory()
    for i in range(3):
        SyncedMemberFactory(sync=sync, identity_value=f"u{i}@example.com", is_member=True)

    assert "3 members acknowledged by the destination" in admin_client.get(change_url(sync)).content.decode()

    # Past EXACT_COUNT_UP_TO rows by PostgreSQL's statistics the page shows its estimate
    # (counting a 10M synced state took a second per view); SQLite always counts.
    monkeypatch.setattr("cohortsync_site.database.EXACT_COUNT_UP_TO", 0)
    page = admin_client.get(change_url(sync)).content.decode()
    if connection.vendor == "postgresql":
        assert "About " in page and " members acknowledged by the destination" in page
        assert "3 members acknowledged" not in page
    else:
        assert "3 members acknowledged by the destination" in page
