"""Streamed CSV downloads for the admin: flat memory, and safe to open in a spreadsheet."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.http import StreamingHttpResponse

# Cells a spreadsheet would evaluate as a formula when the file is opened (CSV injection):
# the ASCII signs, the full-width forms some locales accept, and either after whitespace
# or a line break that an import trims.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_LEADING_SPACE = " \t\r\n\u00a0\u3000"


class _Echo:
    """A write-only file for csv.writer that hands each row back to the caller."""

    def write(self, value: str) -> str:
        return value


def spreadsheet_safe(value: Any) -> Any:
    """The cell as a spreadsheet shows it as text: a leading ' when it would be a formula."""
    if isinstance(value, str) and (
        value.lstrip(_LEADING_SPACE).startswith(_FORMULA_PREFIXES) or value[:1] in ("\t", "\r")
    ):
        return f"'{value}"
    return value


def csv_download(*, filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> StreamingHttpResponse:
    def lines() -> Iterator[str]:
        writer = csv.writer(_Echo())
        yield writer.writerow(header)
        for row in rows:
            yield writer.writerow([spreadsheet_safe(value) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
