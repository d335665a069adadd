"""Database chores shared by the apps."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import OperationalError, connection, transaction
from django.db.models import Model


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
