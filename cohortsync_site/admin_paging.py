"""Admin lists of tables too big to count (millions of failures or profiles)."""

from __future__ import annotations

from functools import cached_property

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest


def page_number(raw: str | None) -> int:
    try:
        return max(1, int(raw or 1))
    except ValueError:
        return 1


class LargeTablePaginator(Paginator):
    """Pages of a table too big to count: knows only whether the next page exists.

    `count` is the rows before this page plus what this page and one more row hold, so the
    admin shows "next" links without a COUNT(*) over millions of rows.
    """

    def __init__(self, object_list: QuerySet, per_page: int, orphans: int = 0,
                 allow_empty_first_page: bool = True, *, page_number: int = 1) -> None:
        super().__init__(object_list, per_page, orphans=0, allow_empty_first_page=allow_empty_first_page)
        self.requested_page = page_number

    @cached_property
    def count(self) -> int:  # type: ignore[override]
        offset = (self.requested_page - 1) * self.per_page
        probe = self.object_list[offset : offset + self.per_page + 1]
        return offset + len(probe.values_list("pk", flat=True))

    @property
    def has_next_page(self) -> bool:
        return self.count > self.requested_page * self.per_page


def large_table_paginator(request: HttpRequest, queryset: QuerySet, per_page: int,
                          allow_empty_first_page: bool = True) -> LargeTablePaginator:
    """For a ModelAdmin's get_paginator: the page the changelist asks for (`?p=`)."""
    return LargeTablePaginator(queryset, per_page, allow_empty_first_page=allow_empty_first_page,
                               page_number=page_number(request.GET.get("p")))
