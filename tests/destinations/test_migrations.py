"""Stored options the kinds' bounds now refuse become what the connectors made of them."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from destinations.models import Destination

BEFORE = [("destinations", "0004_kind_registry_choices")]
AFTER = [("destinations", "0005_options_each_kind_reads")]


@pytest.mark.django_db(transaction=True)
def test_clamped_and_unread_options_are_stored_as_they_were_used() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps.get_model("destinations", "Destination")
    common = {"client_id": "id", "subdomain": "mc1"}
    de = old.objects.create(name="DE", kind="sfmc_data_extension", data_extension_key="K", key_column="SubscriberKey",
                            options={"rowset_batch_size": 200, "max_concurrency": 2}, **common)
    contacts = old.objects.create(name="Contacts", kind="sfmc_contacts", attribute_set="Email Demographics",
                                  options={"async_threshold": 10, "async_batch_size": 5, "rowset_batch_size": 150},
                                  **common)
    fine = old.objects.create(name="Fine", kind="sfmc_data_extension", data_extension_key="K",
                              options={"rowset_batch_size": 20}, **common)

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)

    stored = dict(Destination.objects.values_list("pk", "options"))
    assert stored[de.pk] == {"rowset_batch_size": 50, "max_concurrency": 2}
    assert stored[contacts.pk] == {"rowset_batch_size": 150}
    assert stored[fine.pk] == {"rowset_batch_size": 20}
