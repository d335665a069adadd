"""A run's worth of changes through the DataExtensionConnector into the emulator, over HTTP."""

from __future__ import annotations

import pytest
import requests

from destinations.base import MembershipChange
from tests.destinations.sfmc.conftest import target

pytestmark = pytest.mark.e2e


def run_like_the_engine(connector, sync_target, changes):
    connector.validate_target(sync_target)
    size = connector.send_plan(len(changes)).batch_size
    outcomes = []
    for start in range(0, len(changes), size):
        outcomes += connector.push(sync_target, changes[start:start + size])
    return outcomes


def sandbox_rows(sandbox):
    state = requests.get(f"{sandbox.url}/sfmc/_sandbox/state?limit=1000", timeout=5).json()
    de = state["data_extensions"]["CohortSync_Demo"]
    return de, {row["SubscriberKey"]: row.get("In_Spring_2024") for row in de["rows"]}


def test_120_changes_with_rejected_users_land_as_booleans(make_de, sfmc, sandbox):
    rejected = {"user-007": "Email: bad address", "user-050": "", "user-119": "Column [x] too long"}
    sfmc.configure(reject_identities=rejected)
    connector = make_de()
    changes = [MembershipChange(f"user-{i:03d}", is_member=i % 4 != 0) for i in range(120)]

    outcomes = run_like_the_engine(connector, target("In_Spring_2024"), changes)

    assert len(outcomes) == 120
    assert {o.identity for o in outcomes if not o.ok} == set(rejected)
    de, rows = sandbox_rows(sandbox)
    assert de["row_count"] == 117
    assert rows == {c.identity: c.is_member for c in changes if c.identity not in rejected}
    assert any(f["name"] == "In_Spring_2024" and f["type"] == "Boolean" for f in de["fields"])
    assert de["rows"][0].keys() >= {"SubscriberKey", "In_Spring_2024"}
    assert connector.api_calls >= 3 + 1  # token + at least one call per batch


def test_second_run_flips_leavers_to_false_without_deleting(make_de, sandbox):
    connector = make_de()
    first = [MembershipChange(f"u{i}", True) for i in range(60)]
    run_like_the_engine(connector, target("In_Spring_2024"), first)

    leavers = [MembershipChange(f"u{i}", False) for i in range(0, 60, 2)]
    run_like_the_engine(connector, target("In_Spring_2024"), leavers)

    de, rows = sandbox_rows(sandbox)
    assert de["row_count"] == 60
    assert rows == {f"u{i}": i % 2 == 1 for i in range(60)}
