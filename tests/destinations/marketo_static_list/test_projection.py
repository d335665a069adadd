"""The `marketo_static_list` kind's projected API calls: per batch, a lead sync and an add
to the list for its joining users, lookups by email (cut as the connector cuts them, under
Marketo's 8 KB URL) and a removal for its leaving users."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from destinations.kindspec import PlannedSend
from destinations.marketo.settings import MarketoOptions
from destinations.marketo_static_list.lists import lookup_paths
from destinations.marketo_static_list.projection import project_calls

BASE_URL = "https://123-ABC-456.mktorest.com"


def _send(adds: int, removes: int, unknown: Sequence[tuple[int, str]] = (), **options: Any) -> PlannedSend:
    return PlannedSend(
        adds=adds, removes=removes, options=MarketoOptions.parse(options), settings={"base_url": BASE_URL},
        sync_options={}, target_field="Pro users", leavers_without_remote_id=lambda: list(unknown),
    )


def _parts(send: PlannedSend) -> dict[str, int]:
    return {p.what.split(" (")[0]: p.minimum for p in project_calls(send).parts}


def test_joining_and_leaving_users_in_one_batch_cost_both() -> None:
    parts = _parts(_send(2, 1, batch_size=3))

    assert parts == {"to find the static list": 1, "for lead syncs of joining users": 1,
                     "for adds to the list": 1, "for removals from the list": 1}


def test_leavers_without_a_lead_id_are_looked_up_per_batch_within_the_url_limit() -> None:
    # 300 leaving users with long addresses: their lookup does not fit one 8 KB URL.
    emails = [f"{'x' * 40}{n:03d}@example.com" for n in range(300)]
    unknown = list(enumerate(emails))
    expected = sum(1 for _ in lookup_paths(BASE_URL, emails))
    assert expected > 1

    parts = _parts(_send(0, 300, unknown))

    assert parts["for lead lookups by email of leaving users without a known lead id"] == expected
    assert parts["for removals from the list"] == 1
    # In batches of 100, each batch looks its own leavers up.
    parts = _parts(_send(0, 300, unknown, batch_size=100))
    assert parts["for lead lookups by email of leaving users without a known lead id"] == sum(
        sum(1 for _ in lookup_paths(BASE_URL, emails[start:start + 100])) for start in (0, 100, 200)
    )
    assert parts["for removals from the list"] == 3


def test_above_the_bulk_threshold_joining_users_are_imported_with_the_list() -> None:
    projection = project_calls(_send(3, 2, [(4, "gone@example.com")], bulk_threshold=4))

    assert projection.maximum is None
    assert {p.what.split(" (")[0]: p.minimum for p in projection.parts} == {
        "to find the static list": 1, "to create bulk import files": 1, "for status polls of the imports": 1,
        "for lead lookups by email of leaving users without a known lead id": 1, "for removals from the list": 1,
    }
