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


def test_a_page_count_is_exact_up_to_its_limits_and_the_planners_estimate_beyond(django_assert_max_num_queries):
    from cohorts.models import Profile
    from cohortsync_site.database import page_count
    from tests.factories import ProfileFactory

    # No ANALYZE here: its row counts outlive the test's rollback and change later tests' plans.
    for i in range(30):
        ProfileFactory(distinct_id=f"p-{i}", properties={"plan": "pro"})
    profiles = Profile.objects.all()

    assert page_count(profiles) == page_count(profiles, exact_up_to=1000)
    exact = page_count(profiles)
    assert (exact.value, exact.exact, str(exact)) == (30, True, "30")
    beyond = page_count(profiles, exact_up_to=0)
    slow = Profile.objects.extra(where=["pg_sleep(0.01) IS NOT NULL"] if connection.vendor == "postgresql" else [])
    timed_out = page_count(slow, seconds=0.05)
    if connection.vendor == "postgresql":
        # More rows than the limit by the planner's estimate: nothing is counted.
        with django_assert_max_num_queries(1):
            beyond = page_count(profiles, exact_up_to=0)
        assert beyond.exact is False and beyond.value > 0 and str(beyond) == f"about {beyond.value:,}"
        # 30 rows × 10 ms is past 50 ms: the count stops and the estimate is shown.
        assert timed_out.exact is False and timed_out.value > 0
    else:
        # SQLite has neither an estimate nor a time limit: always counted.
        assert (beyond.value, beyond.exact) == (30, True) and (timed_out.value, timed_out.exact) == (30, True)
