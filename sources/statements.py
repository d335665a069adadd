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
# Functions that act outside the read-only session, so the database cannot stop them: another
# connection that is not read-only (dblink_exec ran a DELETE from a read-only SELECT), the
# server's files, other sessions, the server itself, or SQL held in a string.
OUTSIDE_SESSION_FUNCTIONS = frozenset({
    # PostgreSQL: dblink and its family open connections of their own.
    "DBLINK", "DBLINK_EXEC", "DBLINK_CONNECT", "DBLINK_CONNECT_U", "DBLINK_OPEN", "DBLINK_FETCH",
    "DBLINK_SEND_QUERY", "DBLINK_GET_RESULT",
    # PostgreSQL: the server's files and large objects made from them.
    "LO_IMPORT", "LO_EXPORT", "LO_UNLINK", "LO_FROM_BYTEA", "LO_PUT", "LO_CREATE", "LO_CREAT",
    "PG_READ_FILE", "PG_READ_BINARY_FILE", "PG_STAT_FILE", "PG_LS_DIR", "PG_LS_LOGDIR",
    "PG_LS_WALDIR", "PG_LS_TMPDIR", "PG_LS_ARCHIVE_STATUSDIR", "PG_FILE_WRITE", "PG_FILE_RENAME",
    "PG_FILE_UNLINK", "PG_FILE_SYNC", "PG_LOGDIR_LS",
    # PostgreSQL: other sessions and the server.
    "PG_TERMINATE_BACKEND", "PG_CANCEL_BACKEND", "PG_RELOAD_CONF", "PG_ROTATE_LOGFILE",
    "PG_SWITCH_WAL", "PG_PROMOTE", "PG_CREATE_RESTORE_POINT", "PG_LOG_BACKEND_MEMORY_CONTEXTS",
    "SET_CONFIG",
    # PostgreSQL: run the SQL in a string, which this check cannot read.
    "QUERY_TO_XML", "QUERY_TO_XMLSCHEMA", "QUERY_TO_XML_AND_XMLSCHEMA", "CURSOR_TO_XML",
    # MySQL / MariaDB: the server's files, and the classic command-running UDFs.
    "LOAD_FILE", "SYS_EXEC", "SYS_EVAL",
    # SQLite: native code and files.
    "LOAD_EXTENSION", "READFILE", "WRITEFILE", "EDIT", "FTS3_TOKENIZER",
})
# MySQL and MariaDB run the text of these comments as SQL: /*! INTO OUTFILE '...' */ wrote a
# file on the database server from a query every other check saw as a plain SELECT.
EXECUTABLE_COMMENT_STARTS = ("/*!", "/*M!", "/*m!")


class StatementRefused(ValueError):
    """The query is not exactly one SELECT / WITH statement; the message says why."""


def _is_empty(statement: Statement) -> bool:
    return all(
        token.is_whitespace or token.ttype in T.Comment or token.ttype is T.Punctuation
        for token in statement.flatten()
    )


def _executable_comment(statement: Statement) -> str | None:
    for token in statement.flatten():
        if token.ttype in T.Comment and token.value.lstrip().startswith(EXECUTABLE_COMMENT_STARTS):
            return token.value.strip()[:30]
    return None


def _called_function(tokens: list[tuple[object, str]]) -> str | None:
    """The first function called that acts outside the session, as written (upper case)."""
    for (ttype, value), (_, after) in zip(tokens, tokens[1:], strict=False):
        if after != "(" or ttype in T.Literal and ttype not in T.String.Symbol:
            continue
        name = value.strip('"`[]')
        if name in OUTSIDE_SESSION_FUNCTIONS:
            return name
    return None


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
    comment = _executable_comment(statement)
    if comment:
        raise StatementRefused(
            f"The query contains an executable comment ({comment}...): MySQL and MariaDB run "
            "what it holds as SQL. Remove it, or write the SQL plainly."
        )
    tokens = _meaningful_tokens(statement)
    keywords = [(ttype, value) for ttype, value in tokens if ttype in T.Keyword]
    first = keywords[0][1] if keywords else ""
    if first not in READ_KEYWORDS or tokens[0][0] not in T.Keyword and tokens[0][1] != "(":
        shown = first or tokens[0][1][:20]
        raise StatementRefused(
            f"Only SELECT (or WITH ... SELECT) queries can run on a source, not {shown}."
        )
    function = _called_function(tokens)
    if function:
        raise StatementRefused(
            f"The query calls {function.lower()}(), which acts outside the read-only session "
            "(another connection, the server's files or other sessions); a source query only "
            "reads its own database."
        )
    for (_, before), (_, after), (third_type, _) in zip(tokens, tokens[1:], tokens[2:], strict=False):
        if before == "U" and after == "&" and third_type in T.String.Symbol:
            raise StatementRefused(
                'The query uses a Unicode-escaped name (U&"..."): write the name plainly.'
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
