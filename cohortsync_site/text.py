"""Small wording helpers shared by pages, messages and commands."""

from __future__ import annotations


def count_of(count: int, singular: str, plural: str | None = None) -> str:
    """"1 profile", "2 profiles", "1,234 rows": the noun agrees with the number."""
    noun = singular if count == 1 else (plural or f"{singular}s")
    return f"{count:,} {noun}"
