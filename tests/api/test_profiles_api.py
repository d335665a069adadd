"""The profile ingestion API: bearer tokens, limits, merging like imports, deleting."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils import timezone

from api.models import ApiToken
from api.services import api_token_create, api_token_revoke
from api.views import MAX_RECORDS
from cohorts.models import Profile
from tests.factories import ProfileFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/profiles"


@pytest.fixture
def token() -> str:
    return api_token_create(name="Web app").plaintext


def post(body: object, token: str | None, *, content_type: str = "application/json") -> object:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return Client().post(URL, data=data, content_type=content_type, **headers)


def properties(distinct_id: str) -> dict:  # type: ignore[type-arg]
    return Profile.objects.get(distinct_id=distinct_id).properties


# --- Authentication ------------------------------------------------------------------------------


def test_without_a_valid_token_nothing_is_written(token: str) -> None:
    body = [{"distinct_id": "u1", "properties": {"plan": "pro"}}]
    for answer in (post(body, None), post(body, "cs_not-a-real-token"),
                   Client().post(URL, data=json.dumps(body), content_type="application/json",
                                 HTTP_AUTHORIZATION=f"Basic {token}")):
        assert answer.status_code == 401
        assert answer["WWW-Authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in answer.json()["error"]
    assert not Profile.objects.exists()


def test_a_revoked_token_is_refused_and_use_is_recorded(token: str) -> None:
    stored = ApiToken.objects.get(name="Web app")
    assert stored.last_used_at is None
    assert post([], token).status_code == 200
    stored.refresh_from_db()
    assert stored.last_used_at is not None and stored.last_used_at <= timezone.now()

    api_token_revoke(token=stored)

    assert post([], token).status_code == 401


def test_tokens_are_stored_hashed_and_printed_once_by_the_command() -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", "Backend", stdout=out, stderr=err)
    plaintext = out.getvalue().strip()

    stored = ApiToken.objects.get(name="Backend")
    assert plaintext.startswith("cs_") and len(plaintext) > 40
    assert plaintext not in (stored.token_hash, stored.prefix)
    assert plaintext.startswith(stored.prefix)
    assert "not shown again" in err.getvalue()
    assert post([], plaintext).status_code == 200


# --- Bodies and limits -------------------------------------------------------------------------


def test_an_empty_array_is_200_with_zero_counts(token: str) -> None:
    answer = post([], token)
    assert answer.status_code == 200
    assert answer.json() == {"created": 0, "updated": 0, "unchanged": 0, "rejected": []}


def test_more_than_ten_thousand_profiles_is_413(token: str) -> None:
    body = [{"distinct_id": f"u{n}"} for n in range(MAX_RECORDS + 1)]
    answer = post(body, token)
    assert answer.status_code == 413
    assert "at most 10,000" in answer.json()["error"]
    ndjson = "\n".join(json.dumps(record) for record in body)
    assert post(ndjson, token, content_type="application/x-ndjson").status_code == 413
    assert not Profile.objects.exists()


@override_settings(COHORTSYNC_API_MAX_BODY_BYTES=1000)
def test_a_body_over_the_byte_limit_is_413(token: str) -> None:
    answer = post([{"distinct_id": "u1", "properties": {"bio": "x" * 2000}}], token)
    assert answer.status_code == 413
    assert "larger than 1,000 bytes" in answer.json()["error"]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        ('[{"distinct_id": "u1"', "application/json", "not valid JSON"),
        ('{"distinct_id": "u1"}', "application/json", "must be a JSON array"),
        ("", "application/json", "body is empty"),
        ('[{"distinct_id": "u1", "properties": {"score": NaN}}]', "application/json", "NaN"),
        (b"[\xff]", "application/json", "not UTF-8"),
        ('{"distinct_id": "u1"}\n{oops\n{"distinct_id": "u2"}\nnope', "application/x-ndjson", "2 bad line(s)"),
    ],
)
def test_a_malformed_body_is_400_with_the_first_errors(token: str, body: object, content_type: str, message: str) -> None:
    answer = post(body, token, content_type=content_type)
    assert answer.status_code == 400
    assert message in answer.json()["error"]
    assert not Profile.objects.exists()


def test_ndjson_errors_name_their_lines(token: str) -> None:
    answer = post('{"distinct_id": "u1"}\n{oops\n\n[1,', token, content_type="application/x-ndjson")
    assert [error.split(":")[0] for error in answer.json()["errors"]] == ["line 2", "line 4"]


def test_another_content_type_is_415(token: str) -> None:
    assert post("distinct_id\nu1", token, content_type="text/csv").status_code == 415


def test_other_methods_are_405(token: str) -> None:
    answer = Client().get(URL, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert answer.status_code == 405 and answer["Allow"] == "POST"


# --- Merging ---------------------------------------------------------------------------------


def test_profiles_merge_like_imports_and_bad_records_are_rejected_by_index(token: str) -> None:
    ProfileFactory(distinct_id="u1", properties={"$email": "ana@example.com", "plan": "free", "country": "PT"})
    body = [
        {"distinct_id": "u1", "properties": {"plan": "pro"}, "unset": ["country"]},
        {"distinct_id": "u2", "properties": {"$email": "ben@example.com", "score": 3.5, "tags": ["a"]}},
        {"distinct_id": "", "properties": {}},
        {"distinct_id": "u4", "properties": "pro"},
        {"distinct_id": "u5", "traits": {}},
        "u6",
        {"distinct_id": "u7", "properties": {"plan": "pro"}, "unset": ["plan"]},
        {"distinct_id": "u8", "properties": {"bio": "a\u0000b"}},
        {"distinct_id": 9, "properties": {"plan": None}},
    ]

    answer = post(body, token)

    assert answer.status_code == 200
    result = answer.json()
    assert (result["created"], result["updated"]) == (2, 1)
    assert [(r["index"], r["error"]) for r in result["rejected"]] == [
        (2, "distinct_id is empty"),
        (3, '"properties" must be a JSON object'),
        (4, "unexpected key 'traits': a profile takes distinct_id, properties, unset"),
        (5, 'must be an object {"distinct_id": ..., "properties": {...}, "unset": [...]}'),
        (6, "property 'plan' is both set and unset"),
        (7, "property bio: contains a NUL character (\\u0000); remove it"),
    ]
    assert properties("u1") == {"$email": "ana@example.com", "plan": "pro"}
    assert properties("u2") == {"$email": "ben@example.com", "score": 3.5, "tags": ["a"]}
    assert properties("9") == {}

    again = post(body[:2], token).json()
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)


def test_ndjson_merges_the_same_way(token: str) -> None:
    lines = '{"distinct_id": "u1", "properties": {"plan": "pro"}}\n\n{"distinct_id": "u2"}\n'
    answer = post(lines, token, content_type="application/x-ndjson")
    assert answer.status_code == 200
    assert answer.json()["created"] == 2
    assert properties("u1") == {"plan": "pro"}


# --- Deleting ----------------------------------------------------------------------------------


def test_delete_removes_one_profile(token: str) -> None:
    ProfileFactory(distinct_id="user/with slash")
    ProfileFactory(distinct_id="keep")
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    assert client.delete(f"{URL}/user/with%20slash").status_code == 401
    answer = client.delete(f"{URL}/user/with%20slash", **auth)
    assert answer.status_code == 200 and answer.json() == {"deleted": 1, "distinct_id": "user/with slash"}
    assert list(Profile.objects.values_list("distinct_id", flat=True)) == ["keep"]

    missing = client.delete(f"{URL}/user/with%20slash", **auth)
    assert missing.status_code == 404 and "No profile" in missing.json()["error"]
    assert client.get(f"{URL}/keep", **auth).status_code == 405
