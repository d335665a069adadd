"""API tokens (created and shown once, checked, revoked) and what the API does with profiles."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from api.models import ApiToken
from cohorts.importing import (
    ImportReport,
    ProfileRow,
    ProfileRowError,
    profile_row_normalize,
    profiles_upsert,
)

TOKEN_PREFIX = "cs_"
SHOWN_PREFIX_LENGTH = 10
# Recording every use would write a row per request; once a minute says as much.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
RECORD_KEYS = ("distinct_id", "properties", "unset")


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    plaintext: str  # shown once, never stored


def _hash(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def api_token_issue(*, token: ApiToken, created_by: Any = None) -> str:
    """Give an unsaved token (its name set) a fresh value, save it, and return the value:
    the only time it exists outside the caller's hands."""
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token.prefix = plaintext[:SHOWN_PREFIX_LENGTH]
    token.token_hash = _hash(plaintext)
    token.created_by = created_by if getattr(created_by, "pk", None) else None
    token.save()
    return plaintext


def api_token_create(*, name: str, created_by: Any = None) -> NewToken:
    """A new token; the plaintext is in the result only. Raises ValueError for a bad name."""
    name = (name or "").strip()
    if not name:
        raise ValueError("A token needs a name saying who uses it.")
    if ApiToken.objects.filter(name=name).exists():
        raise ValueError(f"A token named '{name}' already exists; pick another name.")
    token = ApiToken(name=name)
    plaintext = api_token_issue(token=token, created_by=created_by)
    return NewToken(token=token, plaintext=plaintext)


def api_token_authenticate(*, plaintext: str) -> ApiToken | None:
    """The active token with this value (its last use recorded), or None."""
    if not plaintext or len(plaintext) > 200:
        return None
    token = ApiToken.objects.filter(token_hash=_hash(plaintext), revoked_at__isnull=True).first()
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token


def api_token_revoke(*, token: ApiToken) -> bool:
    """Revoke at once; False when it was revoked already."""
    return bool(
        ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    )


# --- Profiles ---------------------------------------------------------------------------------


def _row(record: Any, index: int) -> ProfileRow:
    if not isinstance(record, dict):
        raise ProfileRowError('must be an object {"distinct_id": ..., "properties": {...}, "unset": [...]}')
    unexpected = sorted(set(record) - set(RECORD_KEYS))
    if unexpected:
        raise ProfileRowError(
            f"unexpected key {unexpected[0]!r}: a profile takes {', '.join(RECORD_KEYS)}"
        )
    properties = record.get("properties")
    properties = {} if properties is None else properties
    if not isinstance(properties, dict):
        raise ProfileRowError('"properties" must be a JSON object')
    unset = record.get("unset")
    unset = [] if unset is None else unset
    if not isinstance(unset, list) or not all(isinstance(key, str) and key for key in unset):
        raise ProfileRowError('"unset" must be a list of property names')
    both = sorted(set(unset) & {key for key, value in properties.items() if value is not None})
    if both:
        raise ProfileRowError(f"property {both[0]!r} is both set and unset")
    # An unset key is a property set to null: removed, like null in an import.
    merged = {**properties, **dict.fromkeys(unset)}
    return profile_row_normalize(distinct_id=record.get("distinct_id"), properties=merged, line=index)


def profiles_ingest(*, records: list[Any]) -> dict[str, Any]:
    """Merge API records into profiles through the import row path. A record that cannot be
    stored is rejected by its position and the others are written."""
    rows: list[ProfileRow] = []
    rejected: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        try:
            rows.append(_row(record, index))
        except ProfileRowError as exc:
            rejected.append({"index": index, "error": str(exc)})
    report = ImportReport(file_format="api")
    profiles_upsert(rows=rows, report=report)
    return {"created": report.created, "updated": report.updated, "unchanged": report.unchanged,
            "rejected": rejected}
