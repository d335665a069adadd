"""Refuse every source query that is not exactly one read: checked before it is sent.

The database-level read-only session (sources.connections) is the real guard; this check
is the early, readable one, so a typo'd DELETE is explained here instead of arriving at
the customer's database. sqlparse tokenises without executing or validating anything.
"""

from __future__ import annotations

import sqlparse
from sqlparse import tokens as T
from sqlparse.sql import Statement

READ_KEYWORDS = frozenset({"SELECT", "WITH"})
# Keywords that make a SELECT write or lock: SELECT ... INTO (a table, a file, variables)
# and the locking reads (LOCK IN SHARE MODE; FOR UPDATE / FOR SHARE / FOR KEY SHARE ...).
WRITING_KEYWORDS = frozenset({"INTO", "OUTFILE", "DUMPFILE", "LOCK"})
LOCKING_AFTER_FOR = frozenset({"UPDATE", "SHARE", "NO", "KEY"})


class StatementRefused(ValueError):
    """The query is not exactly one SELECT / WITH statement; the message says why."""


def _is_empty(statement: Statement) -> bool:
    return all(
        token.is_whitespace or token.ttype in T.Comment or token.ttype is T.Punctuation
        for token in statement.flatten()
    )


def _meaningful_tokens(statement: Statement) -> list[tuple[object, str]]:
    return [
        (token.ttype, token.normalized.upper())
        for token in statement.flatten()
        if not token.is_whitespace and token.ttype not in T.Comment
    ]


def read_statement_check(sql: str) -> str:
    """Return the statement without a trailing semicolon, or raise StatementRefused."""
    if not isinstance(sql, str) or not sql.strip():
        raise StatementRefused("The query is empty: write one SELECT statement.")
    statements = [s for s in sqlparse.parse(sql) if not _is_empty(s)]
    if not statements:
        raise StatementRefused("The query holds only comments: write one SELECT statement.")
    if len(statements) > 1:
        raise StatementRefused(
            f"The query holds {len(statements)} statements; a source runs exactly one SELECT "
            "(remove the semicolon and what follows it)."
        )
    statement = statements[0]
    tokens = _meaningful_tokens(statement)
    keywords = [(ttype, value) for ttype, value in tokens if ttype in T.Keyword]
    first = keywords[0][1] if keywords else ""
    if first not in READ_KEYWORDS or tokens[0][0] not in T.Keyword and tokens[0][1] != "(":
        shown = first or tokens[0][1][:20]
        raise StatementRefused(
            f"Only SELECT (or WITH ... SELECT) queries can run on a source, not {shown}."
        )
    for (_, before), (_, after) in zip(tokens, tokens[1:], strict=False):
        if before == "FOR" and after in LOCKING_AFTER_FOR:
            raise StatementRefused(
                f"The query locks rows (FOR {after} ...); a source is only ever read."
            )
    for ttype, value in keywords:
        if (ttype in T.DML and value != "SELECT") or ttype in T.DDL:
            raise StatementRefused(
                f"The query contains {value}: a source is only ever read. If {value} is a "
                'column name, quote it ("...").'
            )
        if value in WRITING_KEYWORDS:
            raise StatementRefused(
                f"The query contains {value}: SELECT ... {value} writes or locks; a source is "
                "only ever read."
            )
    return str(statement).strip().rstrip(";").strip()
