"""The demo, as a new user runs it: seed_demo, log in as admin, "Export now" on every sync.

Everything is real: the seeded destinations point at the sandbox fixture's emulators over
HTTP, the admin action queues the runs, and django-q2 runs them synchronously in tests once
the request's transaction commits. Every seeded sync must reach its sandbox, with failures
only for the demo profiles that are deliberately unusable (no email, or an invalid one).
"""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from cohorts.models import Profile
from cohorts.selectors import cohort_members
from destinations.kinds import kind_names
from destinations.marketo.connector import email_problem
from destinations.models import Destination
from syncs.management.commands.seed_demo import _ODD_EMAILS
from syncs.models import DISTINCT_ID_IDENTITY, RunStatus, Sync, SyncedMember, SyncFailure, SyncRun

pytestmark = [pytest.mark.django_db, pytest.mark.e2e]

PROFILES = 300


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> None:
    cache.clear()


def _seed(sandbox: Any) -> str:
    out = io.StringIO()
    call_command("seed_demo", "--sandbox-url", sandbox.url, "--profiles", str(PROFILES), stdout=out)
    return out.getvalue()


def _admin_client(seed_output: str) -> Client:
    """Logged in with the password seed_demo printed, as the README tells the user to."""
    match = re.search(r"password: (\S+)", seed_output)
    assert match, seed_output
    client = Client()
    assert client.login(username="admin", password=match.group(1))
    return client


def _identity(sync: Sync, profile: Profile) -> Any:
    if sync.identity_property == DISTINCT_ID_IDENTITY:
        return profile.distinct_id
    return profile.properties.get(sync.identity_property)


def _received(sandbox: Any, sync: Sync) -> dict[str, Any]:
    """identity -> what the sandbox holds in the sync's field."""
    destination = sync.destination
    if destination.kind == "marketo_static_list":
        marketo = sandbox.sandboxes.marketo
        members = marketo.list_members(sync.target_field)
        return {lead["email"].lower(): lead["email"].lower() in members for lead in marketo.state()["leads"]}
    if destination.kind == "marketo":
        leads = sandbox.sandboxes.marketo.state()["leads"]
        return {lead["email"]: lead[sync.target_field] for lead in leads if sync.target_field in lead}
    sfmc = sandbox.sandboxes.sfmc
    if destination.kind == "sfmc_contacts":
        contacts = sfmc.state()["contacts"]
        return {key: sets[destination.attribute_set][sync.target_field] for key, sets in contacts.items()
                if sync.target_field in sets.get(destination.attribute_set, {})}
    key_column = destination.key_column
    return {row[key_column]: row[sync.target_field] for row in sfmc.rows(destination.data_extension_key)
            if sync.target_field in row}


def _member_value(sync: Sync) -> Any:
    if sync.destination.kind == "sfmc_contacts":
        return sync.options.get("member_value", "realized")
    return True


def _is_deliberately_bad(identity: Any) -> bool:
    return identity in (None, "") or identity in _ODD_EMAILS


def test_the_demo_exports_every_seeded_cohort_from_the_admin(sandbox, django_capture_on_commit_callbacks) -> None:
    client = _admin_client(_seed(sandbox))
    syncs = list(Sync.objects.select_related("destination", "cohort").order_by("name"))
    assert {s.destination.kind for s in syncs} == set(kind_names())

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:syncs_sync_changelist"), {
            "action": "export_now",
            ACTION_CHECKBOX_NAME: [str(s.pk) for s in syncs],
        })

    assert response.status_code == 302
    for sync in syncs:
        run = SyncRun.objects.get(sync=sync)
        assert run.status in (RunStatus.SUCCEEDED, RunStatus.PARTIAL), (sync.name, run.error_message)
        members = list(cohort_members(sync.cohort))
        assert members, sync.name
        failures = list(SyncFailure.objects.filter(run=run))
        # Only the demo's deliberately unusable profiles fail or are skipped.
        assert all(_is_deliberately_bad(_identity(sync, f.profile)) for f in failures), [
            (f.identity_value, f.message) for f in failures]
        if run.status == RunStatus.PARTIAL:
            assert run.failed_adds > 0
        # Everyone else is acknowledged, and the sandbox holds exactly them as members.
        failed_ids = {f.profile_id for f in failures}
        expected = {_identity(sync, p) for p in members if p.pk not in failed_ids}
        if sync.destination.kind in ("marketo", "marketo_static_list"):
            expected = {e.lower() for e in expected}
        acknowledged = set(SyncedMember.objects.filter(sync=sync, is_member=True)
                           .values_list("identity_value", flat=True))
        assert acknowledged == expected, sync.name
        assert run.succeeded_adds == len(expected) and run.skipped_users + run.failed_adds == len(failures)
        received = {k: v for k, v in _received(sandbox, sync).items() if v == _member_value(sync)}
        assert set(received) == expected, sync.name

    # The odd demo emails show up per user on a Marketo run, with the reason.
    marketo_failures = SyncFailure.objects.filter(run__sync__destination__kind="marketo")
    assert {"missing_identity", "invalid_email"} <= set(marketo_failures.values_list("code", flat=True))
    invalid = marketo_failures.filter(code="invalid_email").first()
    assert invalid is not None and email_problem(invalid.identity_value.strip().lower())

    # Each destination's sandbox page shows what its syncs wrote.
    for destination in Destination.objects.all():
        page = client.get(reverse("admin:destinations_destination_sandbox_state", args=[destination.pk]))
        assert page.status_code == 200
        html = page.content.decode()
        assert "errornote" not in html, destination.name
        for sync in destination.syncs.all():
            assert sync.target_field in html, (destination.name, sync.target_field)
            shown = next(iter(SyncedMember.objects.filter(sync=sync, is_member=True)
                              .order_by("identity_value").values_list("identity_value", flat=True)))
            assert shown in html, (destination.name, shown)
