"""Database chores shared by the apps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import OperationalError, connection, transaction
from django.db.models import Model, QuerySet


def statistics_refresh(model: type[Model]) -> None:
    """ANALYZE the model's table (PostgreSQL): after a bulk load of hundreds of thousands of
    rows the planner must not wait for autovacuum (which may be slow, or off) to learn the
    table's size, or the next plan joins a million rows as if they were a hundred."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def database_error_text(exc: BaseException) -> str:
    """The first line of a database (or driver) error, ASCII only and short: safe to show
    to the person whose data it refused."""
    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return first_line.encode("ascii", "backslashreplace").decode("ascii")[:200]


class QueryTooSlow(Exception):
    """A query ran past the time limit a person waiting for it was given."""


# PostgreSQL's SQLSTATE for a statement cancelled by statement_timeout.
_QUERY_CANCELED = "57014"


@contextmanager
def statement_time_limit(seconds: float) -> Iterator[None]:
    """Each query inside runs at most `seconds` (PostgreSQL; SQLite has no such limit and
    is for development only), in a transaction of its own. For questions a person asks
    from a page (a live count over a million profiles): an expensive one ends with
    QueryTooSlow instead of holding a connection for minutes."""
    if connection.vendor != "postgresql":
        yield
        return
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            # SET LOCAL ends with the transaction (or this savepoint, in tests).
            cursor.execute("SET LOCAL statement_timeout = %s", [max(1, int(seconds * 1000))])
            yield
            cursor.execute("SET LOCAL statement_timeout TO DEFAULT")
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) == _QUERY_CANCELED:
            raise QueryTooSlow(f"The query took longer than {seconds:g} s.") from None
        raise


# Counts a page shows: an exact COUNT(*) up to this many rows (by the planner's estimate),
# the estimate beyond it. Counting takes ~90 ms per million rows here (a cohort's members,
# a sync's synced state), a second per 10 million, and a cohort page shows one count per
# sync besides its own: at 2M, the 1M bench's cohort page (three counts) took 299 ms.
EXACT_COUNT_UP_TO = 500_000
# An exact count the estimate allowed still stops here, and the estimate is shown instead.
EXACT_COUNT_SECONDS = 0.2


@dataclass(frozen=True)
class PageCount:
    """A row count for a page: exact, or PostgreSQL's estimate when counting would take too long."""

    value: int
    exact: bool

    def __str__(self) -> str:
        return f"{self.value:,}" if self.exact else f"about {self.value:,}"


def rows_estimate(queryset: QuerySet[Any]) -> int | None:
    """The planner's estimate of the rows `queryset` returns (PostgreSQL), None elsewhere.
    It comes from the table statistics (ANALYZE), costs a millisecond and reads no row."""
    if connection.vendor != "postgresql":
        return None
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    return max(0, int(plan[0]["Plan"]["Plan Rows"]))


def page_count(
    queryset: QuerySet[Any], *, exact_up_to: int | None = None, seconds: float | None = None
) -> PageCount:
    """COUNT(*) of `queryset` when PostgreSQL estimates at most `exact_up_to` rows and the
    count finishes within `seconds` (defaults: EXACT_COUNT_UP_TO, EXACT_COUNT_SECONDS); its
    estimate otherwise. (SQLite: always exact.)"""
    exact_up_to = EXACT_COUNT_UP_TO if exact_up_to is None else exact_up_to
    seconds = EXACT_COUNT_SECONDS if seconds is None else seconds
    estimate = rows_estimate(queryset)
    if estimate is None:
        return PageCount(queryset.count(), exact=True)
    if estimate > exact_up_to:
        return PageCount(estimate, exact=False)
    try:
        with statement_time_limit(seconds):
            return PageCount(queryset.count(), exact=True)
    except QueryTooSlow:
        return PageCount(estimate, exact=False)
