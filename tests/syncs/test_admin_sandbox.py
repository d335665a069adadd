"""From the admin to the Marketo emulator over real HTTP: suggestions, "Export to…", a run."""

from __future__ import annotations

import pytest
from django.urls import reverse

from syncs.models import RunStatus, Sync, SyncRun
from tests.factories import CohortFactory, DestinationFactory, ProfileFactory

pytestmark = [pytest.mark.django_db, pytest.mark.e2e]


def test_export_to_marketo_sandbox(admin_client, sandbox, django_capture_on_commit_callbacks):
    for n in range(3):
        ProfileFactory(properties={"$email": f"Pro{n}@Example.com", "plan": "pro"})
    ProfileFactory(properties={"$email": "free@example.com", "plan": "free"})
    cohort = CohortFactory(name="Pro users", rules={"all": [{"property": "plan", "op": "eq", "value": "pro"}]})
    destination = DestinationFactory(
        marketo=True, name="Marketo sandbox", base_url=sandbox.marketo_base_url,
        client_id="sandbox-client-id", client_secret="sandbox-client-secret",
    )

    suggestions = admin_client.get(
        reverse("admin:syncs_sync_target_fields"), {"destination": destination.pk}
    ).json()
    assert suggestions["ok"] is True
    assert "cohortProUsers" in [f["name"] for f in suggestions["fields"] if f["compatible"]]

    url = reverse("admin:syncs_sync_export_cohorts")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {
            "cohorts": str(cohort.pk),
            "destination": destination.pk,
            "mode": Sync.Mode.ONE_TIME,
            "identity_property": "$email",
            f"target_field_{cohort.pk}": "cohortProUsers",
        })

    assert response.status_code == 302
    run = SyncRun.objects.get(sync__cohort=cohort)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert run.succeeded_adds == 3 and run.api_calls > 0
    for n in range(3):
        assert sandbox.sandboxes.marketo.lead(f"pro{n}@example.com")["cohortProUsers"] is True
    assert sandbox.sandboxes.marketo.lead("free@example.com") is None

    page = admin_client.get(reverse("admin:syncs_syncrun_change", args=[run.pk])).content.decode()
    assert "Succeeded" in page and "No user was rejected." in page and "No user was skipped." in page
