"""Connection-local temporary tables that hold one run's plan.

Planning a million members must not build a million Python objects: the cohort is copied
into a temporary table inside the database, joined to SyncedMember on the way; only
members whose raw identity is not in the synced state (in a steady state, the churn) are
read by Python, normalised, and written back. The diff is then a pair of set operations in
the database, written to a changes table the send loop reads in keyset pages. A first
export fills the changes table one chunk of profiles at a time while the push reads it
(see planning). Temporary tables belong to the connection, so two workers planning at
once never see each other's rows; they are dropped when the run ends (and with the
connection if the worker dies).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import connection, transaction
from django.db.models import QuerySet

from destinations.base import PlainIdentity
from syncs.models import SyncedMember, SyncFailure

RAW_TABLE = "cohortsync_plan_raw"
NORMALISED_TABLE = "cohortsync_plan_normalised"
CHANGES_TABLE = "cohortsync_plan_changes"
# The identities of one sent file's range that failed, so the rest of the range is
# acknowledged in one statement (syncs.engine.ledger).
FAILED_TABLE = "cohortsync_plan_failed"
# Acknowledged members no longer in the cohort, before the churn is taken out.
GONE_TABLE = "cohortsync_plan_gone"
# A steady-state run's churn, both sides of it, from one pass over the cohort (PostgreSQL).
DIFF_TABLE = "cohortsync_plan_diff"
TABLES = (RAW_TABLE, NORMALISED_TABLE, CHANGES_TABLE, FAILED_TABLE, GONE_TABLE, DIFF_TABLE)
# PostgreSQL's default is 0.1 per row.
PARALLEL_TUPLE_COST_FOR_CHURN = "0.001"

Row = TypeVar("Row")


@dataclass(frozen=True, slots=True)
class StagedChange:
    seq: int
    identity: str
    is_member: bool
    profile_id: int | None


def quoted(name: str) -> str:
    """A table name quoted for SQL (the ledger writes from these tables too)."""
    return connection.ops.quote_name(name)


_q = quoted


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def staging_create(*, streamed: bool = False) -> None:
    """raw: every member with its raw identity and, when that raw value is exactly an
    identity of the synced state, the state's is_member (`acked`); normalised: members
    whose raw value was not in the state, after normalize_identity; changes: the plan.

    `streamed`: the plan is filled chunk by chunk while the push reads it (first exports,
    see planning), so the changes table is indexed from the start: by seq for the reads,
    and unique by identity, which keeps every identity once across chunks."""
    staging_drop()
    # PostgreSQL: the changes table's unique index on seq is built once it is filled
    # (staging_changes_index): maintained row by row it cost more than the rest of a
    # first export's plan.
    serial = "BIGSERIAL" if _is_postgres() else "INTEGER PRIMARY KEY AUTOINCREMENT"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE {_q(RAW_TABLE)} (raw TEXT NULL, profile_id BIGINT NOT NULL, "
            "acked BOOLEAN NULL, plain BOOLEAN NULL)"
        )
        cursor.execute(
            f"CREATE TEMPORARY TABLE {_q(NORMALISED_TABLE)} (identity TEXT NOT NULL, profile_id BIGINT NOT NULL)"
        )
        cursor.execute(
            f"CREATE TEMPORARY TABLE {_q(CHANGES_TABLE)} (seq {serial}, identity TEXT NOT NULL, "
            "is_member BOOLEAN NOT NULL, profile_id BIGINT NULL)"
        )
        cursor.execute(f"CREATE TEMPORARY TABLE {_q(FAILED_TABLE)} (identity TEXT NOT NULL)")
        cursor.execute(f"CREATE TEMPORARY TABLE {_q(GONE_TABLE)} (id BIGINT NOT NULL, identity_value TEXT NOT NULL)")
        if streamed:
            _changes_seq_index(cursor)
            cursor.execute(
                f"CREATE UNIQUE INDEX {_q(CHANGES_TABLE + '_identity')} ON {_q(CHANGES_TABLE)} (identity)"
            )


def _changes_seq_index(cursor: Any) -> None:
    # SQLite's seq is the rowid already.
    if _is_postgres():
        cursor.execute(
            f"CREATE UNIQUE INDEX IF NOT EXISTS {_q(CHANGES_TABLE + '_seq')} ON {_q(CHANGES_TABLE)} (seq)"
        )


def staging_chunk_clear() -> None:
    """Empty the normalised table for the next chunk of a streamed plan (staging_raw_load
    replaces the raw table's rows itself; the changes table keeps growing)."""
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {_q(NORMALISED_TABLE)}" if _is_postgres() else f"DELETE FROM {_q(NORMALISED_TABLE)}")


def staging_drop() -> None:
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"DROP TABLE IF EXISTS {_q(table)}")


def plain_identity_supported() -> bool:
    return _is_postgres()


def staging_raw_load(
    *,
    members: QuerySet[Any],
    sync_id: int,
    plain: PlainIdentity | None = None,
    has_state: bool = True,
) -> int:
    """One pass over the cohort, in the database: every member's raw identity (`_identity`
    annotation) and profile id (`_pid`) and, when that raw value is an identity of the
    synced state, the state's is_member (`acked`). With `plain` (PostgreSQL only), members
    not in the state whose raw value is already normalised are marked `plain`.
    `has_state=False` (nothing acknowledged yet): the synced state is not joined at all.
    Returns the row count. (A steady-state run stages its churn instead: staging_churn_load.)"""
    members_sql, params = _members_sql(members)
    if has_state:
        joined, joined_params = _state_joined(members_sql, params, sync_id)
        where = " WHERE j.profile_id IS NOT NULL"
    else:
        joined = (
            f'SELECT sub."_identity" AS raw, sub."_pid" AS profile_id, CAST(NULL AS BOOLEAN) AS acked '
            f"FROM ({members_sql}) sub"
        )
        joined_params, where = list(params), ""
    plain_sql, plain_params = "NULL", []
    if plain is not None and _is_postgres():
        # Only rows the state does not know are tested: a steady-state run costs nothing more.
        plain_sql = "CASE WHEN j.acked IS NULL THEN (char_length(j.raw) <= %s AND j.raw ~ %s) END"
        plain_params = [plain.max_length, plain.pattern]
    select = (
        "SELECT CAST(j.raw AS TEXT) AS raw, CAST(j.profile_id AS BIGINT) AS profile_id, "
        f"CAST(j.acked AS BOOLEAN) AS acked, CAST({plain_sql} AS BOOLEAN) AS plain FROM ({joined}) j{where}"
    )
    with connection.cursor() as cursor:
        return _table_fill(cursor, RAW_TABLE, "raw, profile_id, acked, plain", select, [*plain_params, *joined_params])


def staging_churn_load(*, members: QuerySet[Any], sync_id: int) -> tuple[int, int]:
    """A steady-state run (a dynamic sync with a synced state; no retry, no full resync)
    stages both sides of its diff from one pass over the cohort: the raw table gets the
    members whose raw identity is not an acknowledged member (joins, changed identities,
    values that need normalising, members without one), and the gone table the acknowledged
    members whose identity no member has as its raw value any more (the removes, once the
    normalised churn is taken out: staging_changes_compute with `gone_staged`). Both are
    the churn, a few thousand rows, not the cohort. Returns the rows in each table.

    PostgreSQL: the cohort and the sync's state meet in one FULL JOIN by raw identity, so
    the cohort is evaluated once (its rule predicates on every profile's properties are most
    of a plan's cost) instead of once per side of the diff. A FULL JOIN is also hashed or
    merged, never a nested loop: jsonb containment (`@>`) is estimated at ~1 % of the
    profiles whatever it matches, and a cohort taken for 1,000 rows when it has 100,000 made
    the state join a nested loop of one index probe per member. SQLite: two statements, a
    LEFT JOIN of the cohort and an anti-join against it."""
    members_sql, params = _members_sql(members)
    joined, joined_params = _state_joined(members_sql, params, sync_id)
    unacknowledged = "(j.acked IS NULL OR j.acked = %s)"
    with connection.cursor() as cursor:
        if not _is_postgres():
            # SQLite indexes a NOT IN list once; a correlated NOT EXISTS would rescan the cohort.
            # (Without the NULLs, or NOT IN would be unknown for every row.)
            gone_select = (
                f"SELECT s.id, s.identity_value FROM {_q(SyncedMember._meta.db_table)} s "
                "WHERE s.sync_id = %s AND s.is_member = %s AND s.identity_value NOT IN "
                f'(SELECT m."_identity" FROM ({members_sql}) m WHERE m."_identity" IS NOT NULL)'
            )
            gone = _table_fill(cursor, GONE_TABLE, "id, identity_value", gone_select, [sync_id, True, *params])
            raw_select = (
                "SELECT j.raw, j.profile_id, j.acked, NULL AS plain "
                f"FROM ({joined}) j WHERE {unacknowledged}"
            )
            staged = _table_fill(cursor, RAW_TABLE, "raw, profile_id, acked, plain", raw_select,
                                 [*joined_params, False])
            return staged, gone
        churn_select = (
            "SELECT CAST(j.raw AS TEXT) AS raw, CAST(j.profile_id AS BIGINT) AS profile_id, "
            "CAST(j.acked AS BOOLEAN) AS acked, CAST(j.state_id AS BIGINT) AS state_id, "
            f"CAST(j.state_identity AS TEXT) AS state_identity FROM ({joined}) j "
            f"WHERE (j.profile_id IS NOT NULL AND {unacknowledged}) OR (j.profile_id IS NULL AND j.acked = %s)"
        )
        _table_fill(cursor, DIFF_TABLE, "", churn_select, [*joined_params, False, True], churn=True)
        gone = _table_fill(cursor, GONE_TABLE, "id, identity_value",
                           f"SELECT state_id AS id, state_identity AS identity_value FROM {_q(DIFF_TABLE)} "
                           "WHERE profile_id IS NULL", [])
        staged = _table_fill(cursor, RAW_TABLE, "raw, profile_id, acked, plain",
                             "SELECT raw, profile_id, acked, CAST(NULL AS BOOLEAN) AS plain "
                             f"FROM {_q(DIFF_TABLE)} WHERE profile_id IS NOT NULL", [])
        return staged, gone


def _members_sql(members: QuerySet[Any]) -> tuple[str, Sequence[Any]]:
    """The cohort's (`_identity`, `_pid`) as SQL for a subquery, and its parameters."""
    sql, params = members.values_list("_identity", "_pid").query.sql_with_params()
    return sql + _projected(), params


def _state_joined(members_sql: str, params: Sequence[Any], sync_id: int) -> tuple[str, list[Any]]:
    """The cohort (`members_sql`) beside the sync's synced state, by raw identity: a member's
    raw, profile_id and, when its raw identity is in the state, acked (the state's
    is_member), state_id and state_identity. PostgreSQL: a FULL JOIN, whose rows with no
    profile_id are the state's identities that no member has (see staging_churn_load); its
    `OFFSET 0` keeps a WHERE on the member side from turning it back into a LEFT JOIN, which
    the misestimated cohort would make a nested loop. SQLite: members only (a LEFT JOIN on
    the state's unique index)."""
    synced = _q(SyncedMember._meta.db_table)
    columns = (
        'sub."_identity" AS raw, sub."_pid" AS profile_id, s.is_member AS acked, s.id AS state_id, '
        "s.identity_value AS state_identity"
    )
    if _is_postgres():
        sql = (
            f"SELECT {columns} FROM ({members_sql}) sub FULL JOIN (SELECT id, identity_value, is_member "
            f'FROM {synced} WHERE sync_id = %s) s ON s.identity_value = sub."_identity" OFFSET 0'
        )
    else:
        sql = (
            f"SELECT {columns} FROM ({members_sql}) sub LEFT JOIN {synced} s "
            'ON s.sync_id = %s AND s.identity_value = sub."_identity"'
        )
    return sql, [*params, sync_id]


def _projected() -> str:
    """PostgreSQL: `OFFSET 0` keeps a cohort's subquery from being merged into the join around
    it, so the join reads the identity the subquery computes instead of each member's whole
    `properties`: a hash of 100,000 members then holds 32-byte rows, not 1 KB ones that spilled
    to disk in 16 batches (a 1 % churn's anti-join of a 100k cohort: 1.42 s -> 0.83 s)."""
    return " OFFSET 0" if _is_postgres() else ""


def _table_fill(
    cursor: Any, table: str, columns: str, select: str, params: Sequence[Any], *, churn: bool = False
) -> int:
    """Replace a staging table's rows with `select`'s (named as its columns); returns the
    row count. PostgreSQL: the table is made anew by CREATE TABLE AS, whose SELECT may run
    in parallel (an INSERT ... SELECT never does: a 1M-row anti-join took 0.6 s instead of
    0.4 s on two cores). `churn`: the rows are a steady state's churn, few, while the
    planner, estimating an anti-join's output at half the table, would find passing them
    between parallel workers too dear (0.49 s serial against 0.32 s parallel at 1M)."""
    if not _is_postgres():
        cursor.execute(f"DELETE FROM {_q(table)}")
        cursor.execute(f"INSERT INTO {_q(table)} ({columns}) {select}", params)
        return max(cursor.rowcount, 0)
    with transaction.atomic():
        if churn:
            # Local to the transaction; the value before is put back for an enclosing one.
            cursor.execute("SHOW parallel_tuple_cost")
            tuple_cost = cursor.fetchone()[0]
            cursor.execute("SELECT set_config('parallel_tuple_cost', %s, true)", [PARALLEL_TUPLE_COST_FOR_CHURN])
        cursor.execute(f"DROP TABLE IF EXISTS {_q(table)}")
        cursor.execute(f"CREATE TEMPORARY TABLE {_q(table)} AS {select}", params)
        count = max(cursor.rowcount, 0)
        if churn:
            cursor.execute("SELECT set_config('parallel_tuple_cost', %s, true)", [tuple_cost])
    return count


def staging_plain_normalise() -> int:
    """Copy the members marked `plain` to the normalised table as they are."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_q(NORMALISED_TABLE)} (identity, profile_id) "
            f"SELECT raw, profile_id FROM {_q(RAW_TABLE)} WHERE plain"
        )
        return max(cursor.rowcount, 0)


def staging_plain_adds() -> int:
    """First exports (a changes table made with `streamed`), one chunk at a time: every
    member marked `plain` is an add as it is, one per identity (the lowest profile id),
    straight into the changes table, unless an earlier chunk holds the identity already.
    Nothing is acknowledged yet, so there is no state to join. Returns the adds."""
    return _changes_insert_new(f"SELECT raw, %s, profile_id FROM {_q(RAW_TABLE)} WHERE plain ORDER BY profile_id")


def staging_normalised_adds() -> int:
    """First exports, after staging_plain_adds: the chunk's members normalised in Python,
    one per identity, unless a plain member of the chunk or an earlier chunk holds it.
    Returns the adds."""
    return _changes_insert_new(f"SELECT identity, %s, profile_id FROM {_q(NORMALISED_TABLE)} ORDER BY profile_id")


def _changes_insert_new(select: str) -> int:
    """Append `select`'s (identity, TRUE, profile_id) rows whose identity the changes table
    does not hold yet (its unique identity index, see staging_create): of rows sharing an
    identity, the first in `select`'s order is kept (no GROUP BY: ON CONFLICT DO NOTHING
    skips repeats within the statement too, and it cost 15 % more)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_q(CHANGES_TABLE)} (identity, is_member, profile_id) {select} "
            "ON CONFLICT (identity) DO NOTHING",
            [True],
        )
        return max(cursor.rowcount, 0)


def staging_raw_missing(*, limit: int) -> tuple[int, list[int]]:
    """How many members have no identity at all, and the profile ids of the first `limit`."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {_q(RAW_TABLE)} WHERE raw IS NULL")
        count = int(cursor.fetchone()[0])
        if not count or limit <= 0:
            return count, []
        cursor.execute(
            f"SELECT profile_id FROM {_q(RAW_TABLE)} WHERE raw IS NULL ORDER BY profile_id LIMIT %s", [limit]
        )
        return count, [row[0] for row in cursor.fetchall()]


def staging_raw_unknown(*, chunk_size: int) -> Iterator[list[tuple[Any, int]]]:
    """(raw, profile id) chunks of members whose raw identity is not in the synced state:
    new members, changed identities, values that need normalising. A server-side cursor on
    PostgreSQL, so a first run of a million members never sits in memory at once."""
    cursor = connection.chunked_cursor()
    try:
        cursor.execute(
            f"SELECT raw, profile_id FROM {_q(RAW_TABLE)} WHERE raw IS NOT NULL AND acked IS NULL "
            "AND plain IS NOT TRUE"
        )
        while rows := cursor.fetchmany(chunk_size):
            yield rows
    finally:
        cursor.close()


def staging_normalised_write(rows: Sequence[tuple[str, int]]) -> None:
    """Append (identity, profile_id) rows; COPY on PostgreSQL, executemany elsewhere."""
    if not rows:
        return
    with connection.cursor() as cursor:
        if _is_postgres():
            raw = cursor.cursor
            with raw.copy(f"COPY {_q(NORMALISED_TABLE)} (identity, profile_id) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(
                f"INSERT INTO {_q(NORMALISED_TABLE)} (identity, profile_id) VALUES (%s, %s)", rows
            )


def staging_index() -> None:
    """Statistics (PostgreSQL) or indexes (SQLite) for the joins that follow."""
    with connection.cursor() as cursor:
        if _is_postgres():
            # Hash joins need no index, only statistics: temporary tables are never
            # auto-analysed, and without them the planner guesses a tiny table.
            cursor.execute(f"ANALYZE {_q(RAW_TABLE)}")
            cursor.execute(f"ANALYZE {_q(NORMALISED_TABLE)}")
        else:
            cursor.execute(f"CREATE INDEX {_q(RAW_TABLE + '_raw')} ON {_q(RAW_TABLE)} (raw)")
            cursor.execute(
                f"CREATE INDEX {_q(NORMALISED_TABLE + '_identity')} ON {_q(NORMALISED_TABLE)} (identity)"
            )


def staging_changes_compute(
    *,
    sync_id: int,
    full_resync: bool,
    retry_of_run_id: int | None,
    retry_non_retriable: bool = False,
    include_removes: bool = True,
    gone_staged: bool = False,
) -> int:
    """Fill the changes table: adds (members not acknowledged as members) then removes
    (acknowledged members no longer in the cohort). Duplicate identities collapse to the
    lowest profile id, so two profiles sharing an email are sent once. Returns the removes.

    Members whose raw value matched the state already carry its is_member (`acked`), so
    only the normalised rows (the churn) are joined to the state again. With `gone_staged`
    (staging_churn_load: the raw table holds only unacknowledged members), the acknowledged
    members whose raw identity left the cohort are in the gone table already; otherwise
    they are found against the raw table, which holds every member.
    """
    if gone_staged and (full_resync or retry_of_run_id is not None):
        raise ValueError("A full resync or a retry plans from every member, not from the staged churn.")
    synced = _q(SyncedMember._meta.db_table)
    failures = _q(SyncFailure._meta.db_table)
    raw, normalised, changes = _q(RAW_TABLE), _q(NORMALISED_TABLE), _q(CHANGES_TABLE)
    retry_raw = retry_norm = retry_synced = ""
    retry_params: list[object] = []
    if retry_of_run_id is not None:
        failed = (
            f"SELECT f.identity_value FROM {failures} f WHERE f.run_id = %s "
            "AND f.operation IN (%s, %s)"
        )
        retry_params = [retry_of_run_id, SyncFailure.Operation.ADD, SyncFailure.Operation.REMOVE]
        if not retry_non_retriable:
            failed += " AND f.retriable = %s"
            retry_params.append(True)
        retry_raw = f" AND r.raw IN ({failed})"
        retry_norm = f" AND n.identity IN ({failed})"
        retry_synced = f" AND s.identity_value IN ({failed})"
    if full_resync:
        raw_adds, raw_params = "r.acked IS NOT NULL", []
        norm_adds, norm_params = "1 = 1", []
    else:
        raw_adds, raw_params = "r.acked = %s", [False]
        norm_adds, norm_params = "(s.id IS NULL OR s.is_member = %s)", [False]
    adds_sql = (
        f"INSERT INTO {changes} (identity, is_member, profile_id) "
        "SELECT a.identity, %s, MIN(a.profile_id) FROM ("
        f"SELECT r.raw AS identity, r.profile_id FROM {raw} r WHERE {raw_adds}{retry_raw} "
        "UNION ALL "
        f"SELECT n.identity, n.profile_id FROM {normalised} n "
        f"LEFT JOIN {synced} s ON s.sync_id = %s AND s.identity_value = n.identity "
        f"WHERE {norm_adds}{retry_norm}"
        ") a GROUP BY a.identity ORDER BY MIN(a.profile_id)"
    )
    adds_params = [True, *raw_params, *retry_params, sync_id, *norm_params, *retry_params]
    gone_sql = (
        f"SELECT s.id, s.identity_value FROM {synced} s "
        f"WHERE s.sync_id = %s AND s.is_member = %s{retry_synced} AND NOT EXISTS "
        f"(SELECT 1 FROM {raw} r WHERE r.acked IS NOT NULL AND r.raw = s.identity_value)"
    )
    gone_params: list[object] = [sync_id, True, *retry_params]
    if gone_staged:
        gone_sql, gone_params = f"SELECT id, identity_value FROM {_q(GONE_TABLE)}", []
    removes_sql = (
        f"INSERT INTO {changes} (identity, is_member, profile_id) "
        f"SELECT g.identity_value, %s, NULL FROM ({gone_sql}) g "
        f"WHERE NOT EXISTS (SELECT 1 FROM {normalised} n WHERE n.identity = g.identity_value) "
        "ORDER BY g.id"
    )
    with connection.cursor() as cursor:
        cursor.execute(adds_sql, adds_params)
        if not include_removes:
            return 0
        cursor.execute(removes_sql, [False, *gone_params])
        return max(cursor.rowcount, 0)


def staging_changes_index() -> None:
    """The index the push loop pages by (PostgreSQL; SQLite's seq is the rowid). Call once
    the changes table is filled."""
    with connection.cursor() as cursor:
        _changes_seq_index(cursor)


def staging_changes_counts() -> tuple[int, int]:
    """(adds, removes) in the changes table."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT is_member, COUNT(*) FROM {_q(CHANGES_TABLE)} GROUP BY is_member"
        )
        counts = {bool(is_member): count for is_member, count in cursor.fetchall()}
    return counts.get(True, 0), counts.get(False, 0)


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


# Rows read per query when batches are small: at 150 rowsets a second one query per
# batch is a real share of the main thread's time, one per 2,000 rows is not.
READ_ROWS = 2000


def staging_pages(
    *, page_size: int, read_rows: int = READ_ROWS, more: Callable[[], bool] | None = None
) -> Iterable[list[StagedChange]]:
    """Every change in pages of `page_size`, read by keyset in reads of at least
    `read_rows` rows, so no cursor stays open while the caller writes results. `more`
    plans the next chunk of a streamed plan once every planned row is read (False when
    the plan is complete)."""
    buffered: list[StagedChange] = []
    reads = staging_reads(
        lambda after, limit: staging_changes_page(after_seq=after, limit=limit),
        limit=max(page_size, read_rows), seq=lambda change: change.seq, more=more,
    )
    for read in reads:
        buffered = buffered + read if buffered else read
        # Pages are cut by position: cutting the rest off again after every page copied it
        # once per page (40 times per read of 2,000 rows at 50 per page).
        start = 0
        while len(buffered) - start >= page_size:
            yield buffered[start:start + page_size]
            start += page_size
        buffered = buffered[start:]
    if buffered:
        yield buffered


def staging_reads(
    read: Callable[[int, int], list[Row]],
    *,
    limit: int,
    seq: Callable[[Row], int],
    more: Callable[[], bool] | None = None,
) -> Iterator[list[Row]]:
    """The changes table in plan order, `read(after_seq, limit)` at a time. A short read is
    the end of the plan, unless `more` plans another chunk (a streamed plan)."""
    after = 0
    while True:
        rows = read(after, limit)
        if rows:
            after = seq(rows[-1])
            yield rows
        if len(rows) < limit and (more is None or not more()):
            return


def staging_changes_rows(*, after_seq: int, limit: int) -> list[tuple[int, str, bool]]:
    """(seq, identity, is_member) of the next `limit` changes: plain tuples, for callers
    that keep nothing per row."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT seq, identity, is_member FROM {_q(CHANGES_TABLE)} WHERE seq > %s ORDER BY seq LIMIT %s",
            [after_seq, limit],
        )
        return [(seq, identity, bool(is_member)) for seq, identity, is_member in cursor.fetchall()]


def staging_range_failed_mark(*, identities: Sequence[str]) -> None:
    """Replace the failed identities with these (call inside the range's transaction)."""
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {_q(FAILED_TABLE)}")
        if identities:
            cursor.executemany(
                f"INSERT INTO {_q(FAILED_TABLE)} (identity) VALUES (%s)", [(i,) for i in identities]
            )


def staging_range_failed(*, first_seq: int, last_seq: int) -> list[StagedChange]:
    """The changes of the range whose identity is marked failed."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.seq, c.identity, c.is_member, c.profile_id FROM {_q(CHANGES_TABLE)} c "
            f"WHERE c.seq BETWEEN %s AND %s AND c.identity IN (SELECT f.identity FROM {_q(FAILED_TABLE)} f) "
            "ORDER BY c.seq",
            [first_seq, last_seq],
        )
        return [
            StagedChange(seq=seq, identity=identity, is_member=bool(is_member), profile_id=profile_id)
            for seq, identity, is_member, profile_id in cursor.fetchall()
        ]


def staging_identity_lengths() -> tuple[int, int]:
    """Characters of the joining and of the leaving users' identities in the changes table."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT is_member, SUM(LENGTH(identity)) FROM {_q(CHANGES_TABLE)} GROUP BY is_member"
        )
        lengths = {bool(is_member): int(total or 0) for is_member, total in cursor.fetchall()}
    return lengths.get(True, 0), lengths.get(False, 0)


def staging_leavers_without_remote_id(*, sync_id: int, adds: int) -> list[tuple[int, str]]:
    """(position in the plan, identity) of each leaving user whose synced state keeps no
    destination id, in plan order. The `adds` joining users come first in the plan, so a
    leaver's position is `adds` plus its rank among the leavers."""
    synced = _q(SyncedMember._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT x.position, x.identity FROM ("
            "SELECT c.identity, ROW_NUMBER() OVER (ORDER BY c.seq) - 1 AS position "
            f"FROM {_q(CHANGES_TABLE)} c WHERE c.is_member = %s) x "
            f"LEFT JOIN {synced} s ON s.sync_id = %s AND s.identity_value = x.identity "
            "WHERE s.remote_id IS NULL OR s.remote_id = '' ORDER BY x.position",
            [False, sync_id],
        )
        return [(adds + int(position), identity) for position, identity in cursor.fetchall()]
