"""The demo's "application database": a SQLite file standing in for the customer's own app.

`seed_demo` creates it with the demo users; a demo-only schedule (`application_tick`,
every minute) then changes it the way a live application would: users upgrade and
downgrade, come back, and sign up. The demo's scheduled import reads those changes into
profiles and its SQL cohort follows the plans, so `make demo` shows profiles changing and
dynamic syncs following them without anyone uploading a file. Nothing here is used
outside the demo.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from syncs.schedules import schedule_upsert

TICK_SCHEDULE_NAME = "cohortsync:demo:application"
TICK_FUNC = "sources.demo.application_tick"
TICK_MINUTES = 1
PLANS = ("free", "pro", "team", "enterprise")

_TABLE = """
CREATE TABLE IF NOT EXISTS app_users (
    distinct_id TEXT PRIMARY KEY,
    email TEXT,
    name TEXT,
    plan TEXT NOT NULL,
    country TEXT,
    signup_date TEXT,
    last_seen TEXT,
    updated_at TEXT NOT NULL
)
"""
_UPDATED_AT_INDEX = "CREATE INDEX IF NOT EXISTS app_users_updated_at ON app_users (updated_at)"


def _stamp(now: dt.datetime | None = None) -> str:
    # Fixed width, so text order is time order (the import's incremental column).
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def application_database_ensure(*, path: Path, users: Iterable[tuple[str, dict[str, Any]]]) -> int:
    """Create the file and its table if missing and add the users it lacks (a user the
    application already changed keeps its changes); returns how many were added."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    try:
        with connection:
            connection.execute(_TABLE)
            connection.execute(_UPDATED_AT_INDEX)
            start = dt.datetime.now(dt.UTC)
            # One microsecond apart, as rows written one by one would be: an incremental read
            # then re-reads one boundary row, not every seeded user.
            cursor = connection.executemany(
                "INSERT OR IGNORE INTO app_users (distinct_id, email, name, plan, country, signup_date, "
                "last_seen, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (distinct_id, p.get("$email"), p.get("$name"), p.get("plan", "free"), p.get("country"),
                     p.get("signup_date"), p.get("last_seen"), _stamp(start + dt.timedelta(microseconds=number)))
                    for number, (distinct_id, p) in enumerate(users)
                ),
            )
            return max(cursor.rowcount, 0)
    finally:
        connection.close()


def application_tick_schedule(*, path: Path) -> None:
    schedule_upsert(name=TICK_SCHEDULE_NAME, func=TICK_FUNC, args=repr((str(path),)), minutes=TICK_MINUTES)


def application_tick(path: str, seed: int | None = None) -> dict[str, int]:
    """One minute of the demo application: a few plan changes, returning users, one signup."""
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    stamp = _stamp(now)
    connection = sqlite3.connect(path)
    try:
        with connection:
            ids = [row[0] for row in connection.execute("SELECT distinct_id FROM app_users")]
            if not ids:
                return {"plan_changes": 0, "seen": 0, "signups": 0}
            changed = rng.sample(ids, k=min(len(ids), rng.randint(2, 6)))
            for distinct_id in changed:
                connection.execute(
                    "UPDATE app_users SET plan = ?, updated_at = ? WHERE distinct_id = ?",
                    (rng.choice(PLANS), stamp, distinct_id),
                )
            seen = rng.sample(ids, k=min(len(ids), rng.randint(5, 15)))
            for distinct_id in seen:
                connection.execute(
                    "UPDATE app_users SET last_seen = ?, updated_at = ? WHERE distinct_id = ?",
                    (now.strftime("%Y-%m-%dT%H:%M:%SZ"), stamp, distinct_id),
                )
            number = int(now.timestamp())
            connection.execute(
                "INSERT OR IGNORE INTO app_users (distinct_id, email, name, plan, country, signup_date, "
                "last_seen, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (f"demo-new-{number}", f"new.user.{number}@example.com", "New User", rng.choice(PLANS[:2]),
                 rng.choice(("US", "GB", "DE", "BR")), now.date().isoformat(),
                 now.strftime("%Y-%m-%dT%H:%M:%SZ"), stamp),
            )
    finally:
        connection.close()
    return {"plan_changes": len(changed), "seen": len(seen), "signups": 1}
