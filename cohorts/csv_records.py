"""CSV records with the line numbers they came from, and runaway quotes caught.

A stray quote ('Dwayne "The Rock' in a name column) opens a quoted value that the csv
module lets run over every following line until the file ends, silently turning the rest
of the file into one cell, or until the value passes the csv field size limit. Here such a
record is reported as a problem naming the line where the quote opened, and the lines it
took in are read again as rows of their own, so one stray quote costs one row.
"""

from __future__ import annotations

import csv
from collections import deque
from collections.abc import Iterable, Iterator
from typing import NamedTuple

_FIELD_LIMIT_MESSAGE = "field larger than field limit"


class CsvRecord(NamedTuple):
    """One record: its cells, or the problem that made it unreadable."""

    first_line: int
    last_line: int
    cells: list[str] | None
    problem: str | None = None
    # For a record rejected because a quoted value never closed: the line it opened on.
    open_quote_line: int | None = None


class _Feed:
    """Lines for csv.reader, remembering those of the record being read (`record`, which
    the consumer clears); lines handed back with `again` are read before the rest of the
    file."""

    def __init__(self, lines: Iterable[tuple[int, str]]) -> None:
        self._lines = iter(lines)
        self.again: deque[tuple[int, str]] = deque()
        self.record: list[tuple[int, str]] = []
        # The file ended while a record was still open (inside a quoted value).
        self.ended_inside_record = False

    def texts(self) -> Iterator[str]:
        # A generator rather than __next__: this runs once per line of the file.
        lines, again, record = self._lines, self.again, self.record
        while True:
            if again:
                item = again.popleft()
            else:
                item = next(lines, None)
                if item is None:
                    self.ended_inside_record = bool(record)
                    return
            record.append(item)
            yield item[1]


def csv_records(lines: Iterable[tuple[int, str]]) -> Iterator[CsvRecord]:
    """Parse (line number, text) pairs as CSV; see the module docstring for runaway quotes."""
    feed = _Feed(lines)
    reader = csv.reader(feed.texts())
    record = feed.record
    while True:
        record.clear()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if len(record) > 1 and _FIELD_LIMIT_MESSAGE in str(exc):
                yield _runaway(list(record), feed, at_end=False)
                reader = csv.reader(feed.texts())
            elif record:
                yield CsvRecord(
                    record[0][0], record[-1][0], None, f"the row could not be parsed as CSV ({exc})"
                )
            continue
        if feed.ended_inside_record:
            feed.ended_inside_record = False
            yield _runaway(list(record), feed, at_end=True)
            reader = csv.reader(feed.texts())
            continue
        yield CsvRecord(record[0][0], record[-1][0], cells)


def _runaway(record: list[tuple[int, str]], feed: _Feed, *, at_end: bool) -> CsvRecord:
    """Reject the record up to the line where its open quote started; read the rest again."""
    opened = _open_quote_position(record)
    taken_in = record[opened + 1 :]
    feed.again.extendleft(reversed(taken_in))
    opened_line = record[opened][0]
    if at_end:
        what = f"a quoted value opened on line {opened_line} is never closed"
    else:
        what = (
            f"a quoted value opened on line {opened_line} is still open on line "
            f"{record[-1][0]} (longer than {csv.field_size_limit():,} characters)"
        )
    if len(taken_in) == 1:
        reason = (
            f"{what}: it took in line {taken_in[0][0]}, which was read again as a row of its "
            "own; fix or remove the stray quote."
        )
    elif taken_in:
        reason = (
            f"{what}: it took in lines {taken_in[0][0]}-{taken_in[-1][0]}, which were read "
            "again as rows of their own; fix or remove the stray quote."
        )
    else:
        reason = f"{what}: the file ends inside it; fix or remove the stray quote."
    return CsvRecord(record[0][0], opened_line, None, reason, opened_line)


def _open_quote_position(record: list[tuple[int, str]]) -> int:
    """Index in `record` of the line where the still-open quoted value starts.

    Mirrors the csv module's default dialect: a quote opens a value only at the start of a
    field; inside one, a doubled quote is a literal quote.
    """
    opened = 0
    in_quotes = after_quote = False
    field_start = True
    for position, (_number, text) in enumerate(record):
        for char in text:
            if in_quotes:
                if char == '"':
                    in_quotes, after_quote = False, True
                continue
            if after_quote:
                after_quote = False
                if char == '"':
                    in_quotes = True
                    continue
            if char == '"' and field_start:
                in_quotes, opened, field_start = True, position, False
            else:
                field_start = char in ",\r\n"
    return opened
