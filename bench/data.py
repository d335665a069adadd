"""Deterministic synthetic data: profiles (as a CSV for the import, or COPYed straight
into the table), membership churn, and failure rows for the admin pages.

Profile i (0-based) has distinct id `bench-%08d`, an email, a plan, a country, a signup
date and `bench_cohort` (true for 99 % of profiles: every i with i % 100 != 99). One
profile in a thousand has an address Marketo would refuse, so every run also exercises
the skipped-user path.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from cohorts.models import Profile
from cohortsync_site.database import statistics_refresh
from syncs.models import SyncFailure

PREFIX = "bench-"
COHORT_PROPERTY = "bench_cohort"
CSV_COLUMNS = ("distinct_id", "$email", "plan", "country", "signup_date", COHORT_PROPERTY)
PLANS = ("free", "pro", "team", "enterprise")
COUNTRIES = ("US", "DE", "FR", "GB", "BR", "IN", "JP", "ES")
EPOCH = dt.date(2022, 1, 1)


def cohort_rules() -> dict[str, Any]:
    return {"all": [{"property": COHORT_PROPERTY, "op": "eq", "value": True}]}


def profile_values(i: int) -> tuple[str, dict[str, Any]]:
    email = f"user{i}@mail{i % 97}.example.com" if i % 1000 != 7 else f"user{i} at example.com"
    return f"{PREFIX}{i:08d}", {
        "$email": email,
        "plan": PLANS[i % len(PLANS)],
        "country": COUNTRIES[(i // 7) % len(COUNTRIES)],
        "signup_date": (EPOCH + dt.timedelta(days=i % 1000)).isoformat(),
        COHORT_PROPERTY: i % 100 != 99,
    }


def profiles_csv_write(*, path: Path, count: int) -> int:
    """Write the CSV the import step reads; returns its size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for i in range(count):
            distinct_id, props = profile_values(i)
            writer.writerow(
                [distinct_id, props["$email"], props["plan"], props["country"], props["signup_date"],
                 "true" if props[COHORT_PROPERTY] else "false"]
            )
    return path.stat().st_size


def profiles_copy(*, count: int) -> None:
    """Insert the same profiles the CSV describes with COPY (no per-row ORM work)."""
    table = connection.ops.quote_name(Profile._meta.db_table)
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        with cursor.cursor.copy(
            f"COPY {table} (distinct_id, properties, created_at, updated_at) FROM STDIN"
        ) as copy:
            for i in range(count):
                distinct_id, props = profile_values(i)
                copy.write_row((distinct_id, json.dumps(props), now, now))
    statistics_refresh(Profile)


def memberships_churn(*, count: int, salt: str, prop: str = COHORT_PROPERTY) -> tuple[int, int]:
    """Flip `count // 2` members out of the cohort (profiles whose boolean `prop` is true)
    and as many non-members in, chosen deterministically by `salt`. Returns (left, joined)."""
    table = connection.ops.quote_name(Profile._meta.db_table)
    half = max(1, count // 2)
    picks: dict[bool, list[int]] = {}
    with transaction.atomic(), connection.cursor() as cursor:
        for is_member in (True, False):
            cursor.execute(
                f"SELECT id FROM {table} WHERE distinct_id LIKE %s AND properties @> %s::jsonb "
                "ORDER BY md5(distinct_id || %s) LIMIT %s",
                [f"{PREFIX}%", json.dumps({prop: is_member}), salt, half],
            )
            picks[is_member] = [row[0] for row in cursor.fetchall()]
        for was_member, ids in picks.items():
            cursor.execute(
                f"UPDATE {table} SET properties = jsonb_set(properties, %s, %s::jsonb), "
                "updated_at = %s WHERE id = ANY(%s)",
                [[prop], json.dumps(not was_member), timezone.now(), ids],
            )
    return len(picks[True]), len(picks[False])


def failures_copy(*, run_id: int, count: int) -> None:
    """`count` failure rows for one run, as a destination outage would leave them."""
    table = connection.ops.quote_name(SyncFailure._meta.db_table)
    now = timezone.now()
    codes = (("1003", "Marketo skipped this lead: invalid data."), ("606", "Rate limited."),
             ("import_failure", "Marketo's bulk import rejected this lead."))
    with transaction.atomic(), connection.cursor() as cursor:
        with cursor.cursor.copy(
            f"COPY {table} (run_id, profile_id, distinct_id, identity_value, operation, code, "
            "message, retriable, created_at) FROM STDIN"
        ) as copy:
            for i in range(count):
                distinct_id, props = profile_values(i)
                code, message = codes[i % len(codes)]
                copy.write_row(
                    (run_id, None, distinct_id, props["$email"], "add", code, message, code == "606", now)
                )
    statistics_refresh(SyncFailure)
