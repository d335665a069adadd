"""Database helpers shared by the apps: the time limit on queries a person waits for."""

from __future__ import annotations

import pytest
from django.db import connection

from cohortsync_site.database import QueryTooSlow, statement_time_limit

pytestmark = pytest.mark.django_db


def test_a_query_past_the_limit_is_cancelled_on_postgresql_and_the_connection_stays_usable():
    slow = "SELECT pg_sleep(2)" if connection.vendor == "postgresql" else "SELECT 1"

    if connection.vendor == "postgresql":
        with pytest.raises(QueryTooSlow, match="longer than 0.2 s"), statement_time_limit(0.2):
            with connection.cursor() as cursor:
                cursor.execute(slow)
    else:
        # SQLite (development only) has no statement timeout: the block runs as is.
        with statement_time_limit(0.2), connection.cursor() as cursor:
            cursor.execute(slow)

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone()[0] == "0"
