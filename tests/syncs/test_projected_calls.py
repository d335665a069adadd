"""A dry run's projected API calls are what sending the same plan costs.

For every kind, and both ways of sending of the kinds that have two (SFMC rowsets and async
upserts, Marketo's sync endpoint and bulk import), a sync goes through plans of 0, 1, a
batch, and more than a batch of joining and leaving users. Each plan is first dry-run, then
run for real against the emulators: the calls the emulator received (token requests left
out, as the projection leaves them out) are the projection, except for status polls beyond
the first per job, which depend on how long the platform takes and are why such a
projection is "at least".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.cache import cache

from destinations.kinds import kind_spec
from destinations.kindspec import CallProjection
from destinations.models import Destination
from destinations.registry import override_connector
from destinations.sandbox.server import SandboxServer
from syncs.models import RunStatus, Sync, SyncedMember
from syncs.selectors import run_call_forecast
from tests.factories import ProfileFactory, SyncFactory
from tests.sandbox_destinations import sandbox_destination
from tests.syncs.fakes import run_now, set_plan

pytestmark = [pytest.mark.django_db, pytest.mark.e2e]

TOKEN_ENDPOINTS = ("/v2/token", "/identity/")
# The endpoints polled for a job's status, and those that create the job.
STATUS_POLLS = ("GET /data/v1/async/{id}/status", "GET /bulk/v1/leads/batch/{id}.json")
JOBS = ("PUT /data/v1/async/dataextensions/{key}/rows", "POST /bulk/v1/leads.json")


@dataclass(frozen=True)
class Path:
    kind: str
    field: str
    options: dict[str, Any]
    name: str

    def __str__(self) -> str:
        return self.name


PATHS = [
    Path("sfmc_data_extension", "Projected_Rowset", {"rowset_batch_size": 2}, "sfmc_rowset"),
    # Above one change a run is sent as async upserts of 2, and a tail of one as a rowset.
    Path("sfmc_data_extension", "Projected_Async",
         {"rowset_batch_size": 2, "async_threshold": 1, "async_batch_size": 2}, "sfmc_async"),
    Path("sfmc_contacts", "Cohort_Demo", {"rowset_batch_size": 2}, "sfmc_contacts"),
    Path("marketo", "cohortProUsers", {"batch_size": 2}, "marketo_sync"),
    Path("marketo", "cohortProUsers", {"batch_size": 2, "bulk_threshold": 1}, "marketo_bulk"),
    Path("marketo_static_list", "Pro users", {"batch_size": 2}, "static_list_sync"),
    Path("marketo_static_list", "Pro users", {"batch_size": 2, "bulk_threshold": 1}, "static_list_bulk"),
]

# The members of the cohort at each step: plans of 0, 1, 2 (a batch), 5 (2 leave, 3 join)
# and 3 (all leave but one) changes.
STEPS: list[set[int]] = [set(), {0}, {0, 1, 2}, {0, 3, 4, 5}, {3}]


@pytest.fixture
def fast_sleeps() -> Iterator[None]:
    """The real connectors, without waiting between status polls."""
    cache.clear()  # tokens live in the process-wide cache

    def build(config: Any) -> Any:
        return kind_spec(config.kind).connector_class()(config, sleep=lambda seconds: None)

    with override_connector(build):
        yield


def _destination(sandbox: SandboxServer, kind: str, options: dict[str, Any]) -> Destination:
    if kind.startswith("marketo"):
        destination = sandbox_destination(sandbox, "marketo", options=options)
        destination.kind = kind
        destination.save()
        return destination
    return sandbox_destination(sandbox, kind, options={"requests_per_second": 1000, **options})


def _calls(sandbox: SandboxServer, kind: str) -> Counter[str]:
    emulator = sandbox.sandboxes.marketo if kind.startswith("marketo") else sandbox.sandboxes.sfmc
    by_endpoint = emulator.state()["calls"]["by_endpoint"]
    return Counter({label: count for label, count in by_endpoint.items()
                    if not any(token in label for token in TOKEN_ENDPOINTS)})


def _projected(sync: Sync) -> CallProjection:
    dry = run_now(sync, dry_run=True)
    assert dry.status == RunStatus.SUCCEEDED, dry.error_message
    forecast = run_call_forecast(dry)
    assert forecast is not None
    return forecast.calls


def _sent(sandbox: SandboxServer, sync: Sync) -> tuple[int, int]:
    """Runs the sync for real: (data calls the emulator received, status polls beyond one
    per job)."""
    before = _calls(sandbox, sync.destination.kind)
    run = run_now(sync)
    assert run.status == RunStatus.SUCCEEDED, run.error_message
    received = _calls(sandbox, sync.destination.kind) - before
    extra_polls = sum(received[label] for label in STATUS_POLLS) - sum(received[label] for label in JOBS)
    return received.total(), extra_polls


@pytest.mark.parametrize("path", PATHS, ids=str)
def test_a_dry_runs_projection_is_what_the_run_then_sends(path: Path, sandbox, fast_sleeps) -> None:
    profiles = [ProfileFactory(properties={"plan": "free", "$email": f"user{n}@example.com"}) for n in range(6)]
    destination = _destination(sandbox, path.kind, {"max_concurrency": 1, **path.options})
    sync = SyncFactory(destination=destination, target_field=path.field, options={"removal_guard_ratio": 1.0})
    checked = []
    for step, members in enumerate(STEPS):
        for n, profile in enumerate(profiles):
            set_plan(profile, "pro" if n in members else "free")
        if path.kind == "marketo_static_list" and step == len(STEPS) - 1:
            # Leavers whose lead id the synced state does not keep (as after a bulk import)
            # are looked up by email first.
            SyncedMember.objects.filter(sync=sync, identity_value__in=["user0@example.com", "user4@example.com"]).update(
                remote_id=""
            )

        projected = _projected(sync)
        received, extra_polls = _sent(sandbox, sync)

        checked.append((step, projected.minimum, received))
        if step == 0 and path.kind == "sfmc_data_extension":
            # The first run creates the column: a range (see the next test).
            assert projected.minimum < received <= (projected.maximum or 0), projected.detail()
            continue
        assert received - extra_polls == projected.minimum, (step, projected.detail())
        if projected.maximum is not None:
            assert received == projected.maximum, (step, projected.detail())
    # Every step changed something but the first, and cost more than the fixed calls.
    assert len({minimum for _, minimum, _ in checked}) > 1


def test_a_column_the_first_run_creates_is_within_the_projection(sandbox, fast_sleeps) -> None:
    """The first run of a sync whose data extension column does not exist yet creates it;
    the dry run cannot know whether it exists, so it says how many calls that may take."""
    ProfileFactory(properties={"plan": "pro", "$email": "user0@example.com"})
    destination = sandbox_destination(sandbox, "sfmc_data_extension", options={"requests_per_second": 1000})
    sync = SyncFactory(destination=destination, target_field="Created_By_The_Run")

    projected = _projected(sync)
    received, extra_polls = _sent(sandbox, sync)

    assert (projected.minimum, projected.maximum) == (3, 11)
    assert extra_polls == 0
    # The column is added and the columns read again until it shows.
    assert projected.minimum < received <= projected.maximum

    # Once a run has validated the column, the next plan's projection is exact.
    ProfileFactory(properties={"plan": "pro", "$email": "user1@example.com"})
    projected = _projected(sync)
    assert (projected.minimum, projected.maximum) == (3, 3)
    assert _sent(sandbox, sync) == (3, 0)
