"""Write-side services for profiles that are not imports."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from cohorts.models import Profile

DELETE_CHUNK = 1000


def profiles_delete(*, distinct_ids: Iterable[str]) -> int:
    """Delete the profiles with these distinct ids (unknown ids are ignored); returns how
    many were deleted. They leave every cohort at once, and the next run of each sync
    that had them as members sets them to false (exited)."""
    deleted = 0
    chunk: list[str] = []

    def flush() -> int:
        with transaction.atomic():
            _, per_model = Profile.objects.filter(distinct_id__in=chunk).delete()
        return per_model.get(Profile._meta.label, 0)

    for distinct_id in distinct_ids:
        chunk.append(distinct_id)
        if len(chunk) >= DELETE_CHUNK:
            deleted += flush()
            chunk = []
    if chunk:
        deleted += flush()
    return deleted
