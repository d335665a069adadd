"""The profile ingestion API: applications push profile changes as they happen.

POST /api/v1/profiles           a JSON array (or NDJSON) of up to 10,000
                                {"distinct_id", "properties": {...}, "unset": [...]}
DELETE /api/v1/profiles/<id>    delete one profile

The views parse and authenticate; api.services.profiles_ingest merges the records through
the file import's row path. Every answer is JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from api.models import ApiToken
from api.services import api_token_authenticate, profiles_ingest
from cohorts.services import profiles_delete

MAX_RECORDS = 10_000
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
SHOWN_ERRORS = 10
JSON_TYPES = ("", "application/json")
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines")
View = Callable[..., JsonResponse]


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


def _endpoint(method: str, wrong_method: str) -> Callable[[View], View]:
    """One method, a valid token, JSON answers: what every endpoint of the API requires."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
            if request.method != method:
                response = _error(405, wrong_method)
                response["Allow"] = method
                return response
            if _token(request) is None:
                return _unauthorized()
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


@_endpoint("POST", "Use POST to send profiles (DELETE /api/v1/profiles/<distinct_id> deletes one).")
def profiles_view(request: HttpRequest) -> JsonResponse:
    try:
        records = _records(request)
    except BadBody as exc:
        return _error(exc.status, exc.message, exc.errors)
    return JsonResponse(profiles_ingest(records=records))


@_endpoint("DELETE", "Use DELETE to delete a profile.")
def profile_view(request: HttpRequest, distinct_id: str) -> JsonResponse:
    if not profiles_delete(distinct_ids=[distinct_id]):
        return _error(404, f"No profile has the distinct_id {distinct_id!r}.")
    return JsonResponse({"deleted": 1, "distinct_id": distinct_id})
