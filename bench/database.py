"""Create the bench database when it is missing: `python -m bench.database [URL]`.

`make bench` calls it, so the bench runs from a clean checkout on a machine whose
PostgreSQL has no bench database yet.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/cohortsync_bench"


def database_ensure(url: str) -> bool:
    """Create the database `url` names unless it exists; True when it was created."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(maintenance, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("DATABASE_URL") or DEFAULT_URL
    if database_ensure(target):
        print(f"Created the database {urlsplit(target).path.lstrip('/')}.")
