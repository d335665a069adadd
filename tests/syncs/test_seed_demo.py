"""`manage.py seed_demo`: demo data that is deterministic, idempotent and logs in."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from cohorts.models import Cohort, Profile, StaticMembership
from cohorts.selectors import cohort_member_count
from destinations.kinds import kind_names
from destinations.models import Destination
from syncs.models import Sync

pytestmark = pytest.mark.django_db

SANDBOX_URL = "http://127.0.0.1:8765"


@pytest.fixture(autouse=True)
def no_schedules(monkeypatch):
    monkeypatch.setattr("syncs.services.sync_schedule_update", lambda *, sync: None)


def seed(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_demo", "--sandbox-url", SANDBOX_URL, "--profiles", "400", *args, stdout=out)
    return out.getvalue()


def printed_password(output: str) -> str:
    match = re.search(r"password: (\S+)", output)
    assert match, output
    return match.group(1)


def test_seed_creates_a_usable_demo():
    output = seed()

    assert Profile.objects.count() == 400
    by_kind = {d.kind: d for d in Destination.objects.all()}
    assert set(by_kind) == set(kind_names())
    de = by_kind["sfmc_data_extension"]
    assert de.auth_base_url == f"{SANDBOX_URL}/sfmc/auth"
    assert (de.subdomain, de.data_extension_key, de.key_column) == (
        "sandbox",
        "CohortSync_Demo",
        "SubscriberKey",
    )
    assert (de.client_id, de.client_secret) == ("sandbox-client-id", "sandbox-client-secret")
    assert by_kind["sfmc_contacts"].attribute_set == "Email Demographics"
    assert by_kind["marketo"].base_url == f"{SANDBOX_URL}/marketo"
    assert by_kind["marketo_static_list"].base_url == f"{SANDBOX_URL}/marketo"
    assert {s.destination.kind for s in Sync.objects.select_related("destination")} == set(
        kind_names()
    )
    for cohort in Cohort.objects.all():
        assert cohort_member_count(cohort) > 0, cohort.name
    assert Cohort.objects.filter(kind=Cohort.Kind.STATIC).exists()

    password = printed_password(output)
    user = authenticate(username="admin", password=password)
    assert user is not None and user.is_superuser and user.is_staff
    assert "http://127.0.0.1:8000/admin/" in output


def test_demo_profiles_include_users_that_cannot_be_synced():
    seed()

    emails = [p.properties.get("$email") for p in Profile.objects.all()]
    assert any(email is None for email in emails)
    odd = [e for e in emails if e and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[a-z]+", e)]
    assert odd, "expected a few invalid emails to show per-user failures"
    assert len(odd) + emails.count(None) < len(emails) * 0.05


def test_seed_twice_duplicates_nothing_and_resets_the_password():
    first_password = printed_password(seed())
    counts = [m.objects.count() for m in (Profile, Cohort, StaticMembership, Destination, Sync)]
    properties = dict(Profile.objects.values_list("distinct_id", "properties"))

    second = seed()

    assert [m.objects.count() for m in (Profile, Cohort, StaticMembership, Destination, Sync)] == counts
    assert dict(Profile.objects.values_list("distinct_id", "properties")) == properties
    assert "0 created, 0 updated, 18 unchanged." in second
    second_password = printed_password(second)
    assert second_password != first_password
    assert authenticate(username="admin", password=second_password) is not None
    assert authenticate(username="admin", password=first_password) is None


def test_a_sandbox_host_that_is_not_allowed_is_explained_and_nothing_is_seeded():
    out = io.StringIO()
    with pytest.raises(CommandError, match="COHORTSYNC_ALLOWED_API_HOSTS"):
        call_command(
            "seed_demo", "--sandbox-url", "http://sandbox.internal:8765", "--profiles", "10",
            stdout=out,
        )
    assert not Profile.objects.exists()
    assert not Destination.objects.exists()


@pytest.mark.e2e
def test_every_demo_sync_runs_against_the_sandbox_emulators(sandbox):
    import json

    from syncs.models import SyncFailure

    call_command(
        "seed_demo", "--sandbox-url", sandbox.url, "--profiles", "300", stdout=io.StringIO()
    )

    for sync in Sync.objects.order_by("name"):
        out = io.StringIO()
        try:
            call_command("run_sync", sync.name, "--inline", "--json", stdout=out)
        except SystemExit as exc:  # non-zero exit codes: partial, failed, ...
            assert exc.code == 1, out.getvalue()
        summary = json.loads(out.getvalue())
        assert summary["status"] in ("succeeded", "partial"), summary
        assert summary["added"] > 0, summary
    # The odd demo emails show up as per-user rows on the Marketo run.
    codes = set(
        SyncFailure.objects.filter(run__sync__name="Recent signups → Marketo").values_list(
            "code", flat=True
        )
    )
    assert {"missing_identity", "invalid_email"} <= codes
