"""Connection-local temporary tables that hold one run's plan.

Planning a million members must not build a million Python objects: members are streamed
once, normalised, and written to a temporary table; the diff against SyncedMember is then a
pair of set operations in the database, written to a second temporary table the push loop
reads in keyset pages. Temporary tables belong to the connection, so two workers planning
at once never see each other's rows; they are dropped when the run ends (and with the
connection if the worker dies).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import connection

from syncs.models import SyncedMember, SyncFailure

MEMBERS_TABLE = "cohortsync_plan_members"
CHANGES_TABLE = "cohortsync_plan_changes"


@dataclass(frozen=True)
class StagedChange:
    seq: int
    identity: str
    is_member: bool
    profile_id: int | None


def _q(name: str) -> str:
    return connection.ops.quote_name(name)


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def staging_create() -> None:
    staging_drop()
    serial = "BIGSERIAL PRIMARY KEY" if _is_postgres() else "INTEGER PRIMARY KEY AUTOINCREMENT"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE {_q(MEMBERS_TABLE)} (identity VARCHAR(512) NOT NULL, profile_id BIGINT NOT NULL)"
        )
        cursor.execute(
            f"CREATE TEMPORARY TABLE {_q(CHANGES_TABLE)} (seq {serial}, identity VARCHAR(512) NOT NULL, "
            "is_member BOOLEAN NOT NULL, profile_id BIGINT NULL)"
        )


def staging_drop() -> None:
    with connection.cursor() as cursor:
        for table in (MEMBERS_TABLE, CHANGES_TABLE):
            cursor.execute(f"DROP TABLE IF EXISTS {_q(table)}")


def staging_members_write(rows: Sequence[tuple[str, int]]) -> None:
    """Append (identity, profile_id) rows; COPY on PostgreSQL, executemany elsewhere."""
    if not rows:
        return
    with connection.cursor() as cursor:
        if _is_postgres():
            raw = cursor.cursor
            with raw.copy(f"COPY {_q(MEMBERS_TABLE)} (identity, profile_id) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(
                f"INSERT INTO {_q(MEMBERS_TABLE)} (identity, profile_id) VALUES (%s, %s)", rows
            )


def staging_members_index() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE INDEX {_q(MEMBERS_TABLE + '_identity')} ON {_q(MEMBERS_TABLE)} (identity)"
        )
        if _is_postgres():
            # Temporary tables are never auto-analysed; without statistics the planner
            # guesses a tiny table and picks nested loops over a million rows.
            cursor.execute(f"ANALYZE {_q(MEMBERS_TABLE)}")


def staging_changes_compute(
    *, sync_id: int, full_resync: bool, retry_of_run_id: int | None
) -> None:
    """Fill the changes table: adds (members not acknowledged as members) then removes
    (acknowledged members no longer in the cohort). Duplicate identities collapse to the
    lowest profile id, so two profiles sharing an email are sent once.
    """
    synced = _q(SyncedMember._meta.db_table)
    failures = _q(SyncFailure._meta.db_table)
    members = _q(MEMBERS_TABLE)
    changes = _q(CHANGES_TABLE)
    only_failed_members = only_failed_synced = ""
    retry_params: list[object] = []
    if retry_of_run_id is not None:
        failed = (
            f"SELECT f.identity_value FROM {failures} f WHERE f.run_id = %s "
            "AND f.operation IN (%s, %s)"
        )
        retry_params = [retry_of_run_id, SyncFailure.Operation.ADD, SyncFailure.Operation.REMOVE]
        only_failed_members = f" AND m.identity IN ({failed})"
        only_failed_synced = f" AND s.identity_value IN ({failed})"
    not_acknowledged = "" if full_resync else " AND (s.id IS NULL OR s.is_member = %s)"
    adds_sql = (
        f"INSERT INTO {changes} (identity, is_member, profile_id) "
        f"SELECT m.identity, %s, MIN(m.profile_id) FROM {members} m "
        f"LEFT JOIN {synced} s ON s.sync_id = %s AND s.identity_value = m.identity "
        f"WHERE 1 = 1{not_acknowledged}{only_failed_members} "
        "GROUP BY m.identity ORDER BY MIN(m.profile_id)"
    )
    adds_params: list[object] = [True, sync_id]
    if not full_resync:
        adds_params.append(False)
    adds_params += retry_params
    removes_sql = (
        f"INSERT INTO {changes} (identity, is_member, profile_id) "
        f"SELECT s.identity_value, %s, NULL FROM {synced} s "
        f"WHERE s.sync_id = %s AND s.is_member = %s{only_failed_synced} "
        f"AND NOT EXISTS (SELECT 1 FROM {members} m WHERE m.identity = s.identity_value) "
        "ORDER BY s.id"
    )
    removes_params: list[object] = [False, sync_id, True, *retry_params]
    with connection.cursor() as cursor:
        cursor.execute(adds_sql, adds_params)
        cursor.execute(removes_sql, removes_params)


def staging_changes_counts() -> tuple[int, int]:
    """(adds, removes) in the changes table."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT is_member, COUNT(*) FROM {_q(CHANGES_TABLE)} GROUP BY is_member"
        )
        counts = {bool(is_member): count for is_member, count in cursor.fetchall()}
    return counts.get(True, 0), counts.get(False, 0)


def staging_members_count() -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(DISTINCT identity) FROM {_q(MEMBERS_TABLE)}")
        return int(cursor.fetchone()[0])


def staging_changes_page(*, after_seq: int, limit: int, is_member: bool | None = None) -> list[StagedChange]:
    """The next `limit` changes after `after_seq`, in plan order."""
    condition, params = "seq > %s", [after_seq]
    if is_member is not None:
        condition += " AND is_member = %s"
        params.append(is_member)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT seq, identity, is_member, profile_id FROM {_q(CHANGES_TABLE)} "
            f"WHERE {condition} ORDER BY seq LIMIT %s",
            [*params, limit],
        )
        return [
            StagedChange(seq=seq, identity=identity, is_member=bool(is_member_), profile_id=profile_id)
            for seq, identity, is_member_, profile_id in cursor.fetchall()
        ]


def staging_pages(*, page_size: int) -> Iterable[list[StagedChange]]:
    """Every change in pages of `page_size`, read by keyset so no cursor stays open while
    the caller writes results."""
    after = 0
    while True:
        page = staging_changes_page(after_seq=after, limit=page_size)
        if not page:
            return
        yield page
        after = page[-1].seq
