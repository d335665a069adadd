"""The engine with the real connectors, against the SFMC and Marketo emulators over HTTP."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from syncs.models import DISTINCT_ID_IDENTITY, RunStatus, SyncFailure
from tests.factories import DestinationFactory, SyncFactory
from tests.syncs.fakes import pro_profile, run_now, set_plan, synced_state

pytestmark = [pytest.mark.django_db, pytest.mark.e2e]


@pytest.fixture(autouse=True)
def _fresh_token_cache() -> None:
    cache.clear()


def _sfmc_destination(sandbox):  # type: ignore[no-untyped-def]
    return DestinationFactory(
        auth_base_url=sandbox.sfmc_auth_base_url,
        client_id="sandbox-client-id",
        client_secret="sandbox-client-secret",
        data_extension_key="CohortSync_Demo",
        key_column="SubscriberKey",
        options={"requests_per_second": 1000},
    )


def test_data_extension_sync_writes_booleans_and_flips_leavers(sandbox) -> None:
    profiles = [pro_profile(f"user{n}@example.com") for n in range(5)]
    sfmc = sandbox.sandboxes.sfmc
    sfmc.configure(reject_identities={profiles[4].distinct_id: "Email: bad address"})
    sync = SyncFactory(
        destination=_sfmc_destination(sandbox),
        target_field="In_Demo_Cohort",
        identity_property=DISTINCT_ID_IDENTITY,
    )

    first = run_now(sync)

    assert first.status == RunStatus.PARTIAL
    assert (first.succeeded_adds, first.failed_adds) == (4, 1)
    assert SyncFailure.objects.get(run=first).identity_value == profiles[4].distinct_id
    rows = {r["SubscriberKey"]: r["In_Demo_Cohort"] for r in sfmc.state()["data_extensions"]["CohortSync_Demo"]["rows"]}
    assert rows == {p.distinct_id: True for p in profiles[:4]}

    sfmc.configure(reject_identities={})
    set_plan(profiles[0], "free")
    second = run_now(sync)

    assert second.status == RunStatus.SUCCEEDED
    assert (second.succeeded_adds, second.succeeded_removes) == (1, 1)
    rows = {r["SubscriberKey"]: r["In_Demo_Cohort"] for r in sfmc.state()["data_extensions"]["CohortSync_Demo"]["rows"]}
    assert rows[profiles[0].distinct_id] is False and rows[profiles[4].distinct_id] is True
    assert second.api_calls > 0

    rowsets_before = list(sfmc.rowset_sizes)
    third = run_now(sync)
    assert third.status == RunStatus.SUCCEEDED and third.planned_adds == third.planned_removes == 0
    assert sfmc.rowset_sizes == rowsets_before  # nothing written: only the validation read


def test_marketo_sync_sets_the_boolean_field_and_stops_on_quota(sandbox) -> None:
    marketo = sandbox.sandboxes.marketo
    destination = DestinationFactory(
        marketo=True,
        base_url=sandbox.marketo_base_url,
        client_id="sandbox-client-id",
        client_secret="sandbox-client-secret",
        options={"batch_size": 2, "max_concurrency": 1},
    )
    for n in range(3):
        pro_profile(f"lead{n}@example.com")
    sync = SyncFactory(destination=destination, target_field="cohortProUsers")

    run = run_now(sync)

    assert run.status == RunStatus.SUCCEEDED
    assert all(marketo.lead(f"lead{n}@example.com")["cohortProUsers"] is True for n in range(3))
    assert synced_state(sync) == {f"lead{n}@example.com": True for n in range(3)}

    used = marketo.state()["calls"]["daily_used"]
    marketo.configure(daily_quota=used + 1)
    for n in range(3, 8):
        pro_profile(f"lead{n}@example.com")
    quota_run = run_now(sync)

    assert quota_run.status == RunStatus.PARTIAL
    assert quota_run.error_code == "607"
    assert 0 < quota_run.planned_adds == 5
    assert len(synced_state(sync)) < 8
