"""Read-side queries of syncs that every run asks."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from syncs.models import SyncedMember
from syncs.selectors import sync_has_synced_state, sync_is_frozen
from tests.factories import SyncFactory

pytestmark = pytest.mark.django_db


def _state_insert(sync_id: int, count: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s) "
            f"INSERT INTO {SyncedMember._meta.db_table} (sync_id, identity_value, is_member, acknowledged_at) "
            "SELECT %s, 'user' || i || '@example.com', %s, %s FROM n",
            [count, sync_id, True, timezone.now()],
        )


def test_whether_a_sync_has_synced_state() -> None:
    sync, other = SyncFactory(), SyncFactory()
    _state_insert(other.pk, 3)

    assert not sync_has_synced_state(sync_id=sync.pk) and not sync_is_frozen(sync)
    SyncedMember.objects.create(sync=sync, identity_value="ana@example.com", is_member=False,
                                acknowledged_at=timezone.now())
    assert sync_has_synced_state(sync_id=sync.pk) and sync_is_frozen(sync)


def test_the_synced_state_is_asked_by_index_not_by_reading_other_syncs_rows() -> None:
    # As in a fleet: the sync's rows lie after many other syncs' rows.
    earlier, sync = SyncFactory(), SyncFactory()
    _state_insert(earlier.pk, 30_000)
    _state_insert(sync.pk, 1_000)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {SyncedMember._meta.db_table}")

    with CaptureQueriesContext(connection) as queries:
        assert sync_has_synced_state(sync_id=sync.pk)
    (query,) = queries.captured_queries
    with connection.cursor() as cursor:
        cursor.execute(("EXPLAIN " if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN ") + query["sql"])
        plan = "\n".join(" ".join(str(column) for column in row) for row in cursor.fetchall())

    # PostgreSQL chose a sequential scan for `LIMIT 1`, reading the 30,000 rows before
    # the sync's first; SQLite would SCAN the table.
    assert "Seq Scan" not in plan and not re.search(r"\bSCAN\b", plan), plan
    assert re.search("index", plan, re.IGNORECASE), plan
