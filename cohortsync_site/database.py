"""Database chores shared by the apps."""

from __future__ import annotations

from django.db import connection
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
