"""The projected API calls of the SFMC kinds: data extension rowsets or async upserts as the
connector picks them per batch; one contact update per user."""

from __future__ import annotations

from typing import Any

from destinations.kindspec import PlannedSend
from destinations.sfmc_contacts.projection import project_calls as contacts_calls
from destinations.sfmc_contacts.spec import ContactsOptions
from destinations.sfmc_data_extension.projection import batches_by_endpoint
from destinations.sfmc_data_extension.projection import project_calls as data_extension_calls
from destinations.sfmc_data_extension.spec import DataExtensionOptions


def _options(**options: Any) -> DataExtensionOptions:
    return DataExtensionOptions.parse(options)


def test_rowsets_up_to_the_async_threshold_then_async_upserts() -> None:
    assert batches_by_endpoint(0, _options()) == (0, 0)
    assert batches_by_endpoint(1000, _options()) == (20, 0)
    assert batches_by_endpoint(1001, _options()) == (0, 1)
    assert batches_by_endpoint(64_001, _options()) == (1, 2)  # a tail of one row is a rowset
    assert batches_by_endpoint(64_051, _options()) == (0, 3)  # a tail of 51 rows is an upsert
    # A threshold of 0: every batch of more than 0 rows is an upsert, the last one included.
    assert batches_by_endpoint(5, _options(async_threshold=0, async_batch_size=2)) == (0, 3)


def test_a_data_extension_projection_is_open_ended_only_with_async_upserts() -> None:
    def send(total: int, **sync_options: Any) -> PlannedSend:
        return PlannedSend(adds=total, removes=0, options=_options(), settings={}, sync_options=sync_options,
                           target_confirmed=True)

    rowsets = data_extension_calls(send(120))
    assert (rowsets.minimum, rowsets.maximum, rowsets.text()) == (5, 5, "5 API calls")
    upserts = data_extension_calls(send(5000))
    assert (upserts.minimum, upserts.maximum, upserts.text()) == (4, None, "at least 4 API calls")


def test_contacts_cost_one_call_per_user() -> None:
    projection = contacts_calls(PlannedSend(adds=70, removes=30, options=ContactsOptions(), settings={},
                                            sync_options={}))

    assert (projection.minimum, projection.maximum) == (101, None)
    assert "100 for contact updates (one per user who joined or left)" in projection.detail()
