"""The profile ingestion API: applications push profile changes as they happen.

POST /api/v1/profiles           a JSON array (or NDJSON) of up to 10,000
                                {"distinct_id", "properties": {...}, "unset": [...]}
DELETE /api/v1/profiles/<id>    delete one profile

Records go through the file import's row path (cohorts.importing): the same checks, the
same merge, per-record rejects instead of failing the request. Every answer is JSON.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from api.models import ApiToken
from api.services import api_token_authenticate
from cohorts.importing import (
    ImportReport,
    ProfileRow,
    ProfileRowError,
    profile_row_normalize,
    profiles_upsert,
)
from cohorts.services import profiles_delete

MAX_RECORDS = 10_000
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
SHOWN_ERRORS = 10
RECORD_KEYS = ("distinct_id", "properties", "unset")
JSON_TYPES = ("", "application/json")
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines")


class BadBody(Exception):
    def __init__(self, status: int, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []


def _error(status: int, message: str, errors: list[str] | None = None) -> JsonResponse:
    body: dict[str, Any] = {"error": message}
    if errors:
        body["errors"] = errors
    response = JsonResponse(body, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="cohortsync"'
    return response


def _token(request: HttpRequest) -> ApiToken | None:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return api_token_authenticate(plaintext=credentials.strip())


def _unauthorized() -> JsonResponse:
    return _error(
        401,
        "A valid API token is required: send 'Authorization: Bearer <token>'. Create one in "
        "the admin (API tokens) or with `manage.py create_api_token NAME`.",
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _loads(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _body_text(request: HttpRequest) -> str:
    limit = int(getattr(settings, "COHORTSYNC_API_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES))
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise BadBody(413, f"The body is larger than {limit:,} bytes: send at most {MAX_RECORDS:,} profiles per request.")
    raw = request.read(limit + 1)
    if len(raw) > limit:
        raise BadBody(413, f"The body is larger than {limit:,} bytes: send at most {MAX_RECORDS:,} profiles per request.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadBody(400, f"The body is not UTF-8 text (byte {exc.start}).") from None


def _too_many(count: int) -> BadBody:
    return BadBody(
        413, f"The body holds {count:,} profiles or more; send at most {MAX_RECORDS:,} per request."
    )


def _records(request: HttpRequest) -> list[Any]:
    content_type = (request.content_type or "").lower()
    if content_type not in JSON_TYPES + NDJSON_TYPES:
        raise BadBody(
            415,
            f"Content-Type {content_type!r} is not supported: send application/json (an array) "
            "or application/x-ndjson (one object per line).",
        )
    text = _body_text(request)
    if content_type in NDJSON_TYPES:
        records: list[Any] = []
        errors: list[str] = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            if len(records) >= MAX_RECORDS:
                raise _too_many(MAX_RECORDS + 1)
            try:
                records.append(_loads(line))
            except ValueError as exc:
                errors.append(f"line {number}: not valid JSON ({str(exc).split(': line ')[0][:100]})")
        if errors:
            raise BadBody(400, f"The body is not valid NDJSON: {len(errors)} bad line(s).", errors[:SHOWN_ERRORS])
        return records
    if not text.strip():
        raise BadBody(400, "The body is empty: send a JSON array of profiles ([] for none).")
    try:
        document = _loads(text)
    except ValueError as exc:
        raise BadBody(400, f"The body is not valid JSON: {str(exc)[:200]}.") from None
    if not isinstance(document, list):
        raise BadBody(
            400,
            'The body must be a JSON array of profiles: [{"distinct_id": "u1", "properties": '
            '{...}, "unset": [...]}].',
        )
    if len(document) > MAX_RECORDS:
        raise _too_many(len(document))
    return document


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


@csrf_exempt
def profiles_view(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        response = _error(405, "Use POST to send profiles (DELETE /api/v1/profiles/<distinct_id> deletes one).")
        response["Allow"] = "POST"
        return response
    if _token(request) is None:
        return _unauthorized()
    try:
        records = _records(request)
    except BadBody as exc:
        return _error(exc.status, exc.message, exc.errors)
    rows: list[ProfileRow] = []
    rejected: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        try:
            rows.append(_row(record, index))
        except ProfileRowError as exc:
            rejected.append({"index": index, "error": str(exc)})
    report = ImportReport(file_format="api")
    profiles_upsert(rows=rows, report=report)
    return JsonResponse(
        {
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "rejected": rejected,
        }
    )


@csrf_exempt
def profile_view(request: HttpRequest, distinct_id: str) -> JsonResponse:
    if request.method != "DELETE":
        response = _error(405, "Use DELETE to delete a profile.")
        response["Allow"] = "DELETE"
        return response
    if _token(request) is None:
        return _unauthorized()
    if not profiles_delete(distinct_ids=[distinct_id]):
        return _error(404, f"No profile has the distinct_id {distinct_id!r}.")
    return JsonResponse({"deleted": 1, "distinct_id": distinct_id})
