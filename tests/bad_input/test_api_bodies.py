"""Bad input, the ingestion API: bodies, framing, paths and headers a careless or hostile
client sends. Each answer is JSON with a specific message, never a 500 or a traceback, and
no valid profile is lost or silently dropped."""

from __future__ import annotations

import http.client
import io
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client, override_settings

from api.services import api_token_create
from cohorts.models import Profile
from tests.factories import ProfileFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/profiles"
NDJSON = "application/x-ndjson"


@pytest.fixture
def token() -> str:
    return api_token_create(name="Hostile client").plaintext


def _client() -> Client:
    return Client(raise_request_exception=False)


def _stored() -> dict[str, dict[str, Any]]:
    return dict(Profile.objects.values_list("distinct_id", "properties"))


# --- Bodies -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Body:
    id: str
    content_type: str
    body: str
    status: int
    says: str  # in the answer's JSON
    stored: dict[str, dict[str, Any]]  # every profile afterwards


BODIES = [
    # U+2028 / U+2029 / U+0085 are valid unescaped inside JSON strings, and
    # json.dumps(ensure_ascii=False) writes them so: they are not line breaks of NDJSON.
    Body("ndjson, LINE SEPARATOR inside a value", NDJSON,
         '{"distinct_id": "u1", "properties": {"bio": "one\u2028two"}}\n'
         '{"distinct_id": "u2", "properties": {"bio": "three\u2029four\x85five"}}\n',
         200, '"created": 2',
         {"u1": {"bio": "one\u2028two"}, "u2": {"bio": "three\u2029four\x85five"}}),
    Body("ndjson, CRLF line ends and blank lines", NDJSON,
         '{"distinct_id": "u1"}\r\n\r\n   \r\n{"distinct_id": "u2", "properties": {"a": 1}}\r\n',
         200, '"created": 2', {"u1": {}, "u2": {"a": 1}}),
    Body("ndjson, a raw control character is one bad line, named", NDJSON,
         '{"distinct_id": "u1"}\n{"distinct_id": "u2", "properties": {"a": "x\x0cy"}}\n',
         400, "line 2: not valid JSON", {}),
    Body("ndjson, blank lines only", NDJSON, "\n\r\n \n", 200, '"created": 0', {}),
    Body("json, whitespace only", "application/json", " \n\t ", 400, "The body is empty", {}),
    Body("json, a 100,000-deep array", "application/json", "[" * 100_000 + "]" * 100_000, 400,
         "nested too deeply", {}),
    Body("json, an integer of 5,000 digits", "application/json",
         '[{"distinct_id": "u1", "properties": {"n": ' + "9" * 5000 + "}}]", 400, "not valid JSON", {}),
    Body("json, Infinity", "application/json",
         '[{"distinct_id": "u1", "properties": {"n": Infinity}}]', 400, "Infinity is not valid JSON", {}),
    Body("json, one object instead of an array", "application/json", '{"distinct_id": "u1"}', 400,
         "must be a JSON array", {}),
    Body("json, charset parameter is ignored", "application/json; charset=latin-1",
         '[{"distinct_id": "u1"}]', 200, '"created": 1', {"u1": {}}),
    Body("form encoding", "application/x-www-form-urlencoded", "distinct_id=u1", 415,
         "is not supported", {}),
    Body("duplicate keys: the last one wins, as in every JSON parser", "application/json",
         '[{"distinct_id": "u1", "distinct_id": "u2"}]', 200, '"created": 1', {"u2": {}}),
    Body("one id twice: both records merge in order", "application/json",
         json.dumps([{"distinct_id": "u1", "properties": {"a": 1, "b": 1}},
                     {"distinct_id": "u1", "properties": {"c": 1}, "unset": ["a"]}]),
         200, '"rejected": []', {"u1": {"b": 1, "c": 1}}),
    Body("set and unset in one record", "application/json",
         json.dumps([{"distinct_id": "u1", "properties": {"a": 1}, "unset": ["a"]}, {"distinct_id": "u2"}]),
         200, "property 'a' is both set and unset", {"u2": {}}),
    # The one JSON value check (cohortsync_site.json_values) answers these; before it, a lone
    # surrogate in an id was a 500 (UnicodeEncodeError) on both databases.
    Body("a lone surrogate in a distinct_id", "application/json",
         '[{"distinct_id": "\\ud800"}, {"distinct_id": "u2"}]', 200, "lone surrogate", {"u2": {}}),
    Body("a lone surrogate in an unset name", "application/json",
         '[{"distinct_id": "u1", "unset": ["\\udfff"]}]', 200, "lone surrogate", {}),
    Body("a NUL in a property name", "application/json",
         '[{"distinct_id": "u1", "properties": {"a\\u0000b": 1}}]', 200, "NUL", {}),
    Body("an integer past 64 bits", "application/json",
         '[{"distinct_id": "u1", "properties": {"n": 99999999999999999999}}]', 200, "64", {}),
    Body("unset is a string, not a list", "application/json",
         json.dumps([{"distinct_id": "u1", "unset": "a"}]), 200, "must be a list of property names", {}),
]


@pytest.mark.parametrize("case", BODIES, ids=[case.id for case in BODIES])
def test_bad_bodies(case: Body, token: str) -> None:
    answer = _client().post(URL, data=case.body.encode(), content_type=case.content_type,
                            HTTP_AUTHORIZATION=f"Bearer {token}")
    assert answer.status_code == case.status, answer.content[:300]
    assert answer["Content-Type"] == "application/json"
    assert case.says in answer.content.decode()
    assert _stored() == case.stored


# --- Framing: chunked bodies ------------------------------------------------------------------


def _chunked_post(token: str, body: bytes, *, input_terminated: bool) -> Any:
    """A chunked request as a WSGI server hands it over: no CONTENT_LENGTH. gunicorn
    de-chunks and says so with wsgi.input_terminated; runserver passes the raw stream."""
    extra = {
        "CONTENT_LENGTH": "",
        "CONTENT_TYPE": NDJSON,
        "HTTP_TRANSFER_ENCODING": "chunked",
        "wsgi.input": io.BytesIO(body),
        "HTTP_AUTHORIZATION": f"Bearer {token}",
    }
    if input_terminated:
        extra["wsgi.input_terminated"] = True
    return _client().post(URL, data=b"", content_type=NDJSON, **extra)


def test_a_dechunked_body_without_content_length_is_read(token: str) -> None:
    body = b'{"distinct_id": "u1", "properties": {"plan": "pro"}}\n{"distinct_id": "u2"}\n'
    answer = _chunked_post(token, body, input_terminated=True)
    assert answer.status_code == 200, answer.content
    assert answer.json()["created"] == 2
    assert _stored() == {"u1": {"plan": "pro"}, "u2": {}}


@override_settings(COHORTSYNC_API_MAX_BODY_BYTES=1000)
def test_a_dechunked_body_still_has_the_size_limit(token: str) -> None:
    body = b"".join(b'{"distinct_id": "u%d"}\n' % n for n in range(200))
    answer = _chunked_post(token, body, input_terminated=True)
    assert answer.status_code == 413
    assert "larger than 1,000 bytes" in answer.json()["error"]
    assert not Profile.objects.exists()


def test_a_chunked_body_the_server_cannot_read_is_411_not_an_empty_success(token: str) -> None:
    answer = _chunked_post(token, b'{"distinct_id": "u1"}\n', input_terminated=False)
    assert answer.status_code == 411
    assert "Content-Length" in answer.json()["error"]


@pytest.mark.django_db(transaction=True)
def test_a_real_chunked_request_to_the_development_server_is_refused_not_lost(live_server: Any) -> None:
    # runserver (Django's WSGIServer) hands Django the raw chunked stream and no length:
    # before, the body read as empty and NDJSON answered 200 {"created": 0}.
    token = api_token_create(name="Chunked client").plaintext
    address = urlsplit(live_server.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        connection.putrequest("POST", URL)
        connection.putheader("Authorization", f"Bearer {token}")
        connection.putheader("Content-Type", NDJSON)
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        line = b'{"distinct_id": "u1"}\n'
        connection.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(line), line))
        response = connection.getresponse()
        status, answer = response.status, json.loads(response.read())
    finally:
        connection.close()
    assert status == 411
    assert "Content-Length" in answer["error"]


# --- Paths and methods ------------------------------------------------------------------------


@dataclass(frozen=True)
class Path:
    id: str
    method: str
    path: str
    status: int
    says: str


PATHS = [
    Path("POST with a trailing slash", "POST", f"{URL}/", 404, "POST /api/v1/profiles"),
    Path("an unknown endpoint", "POST", "/api/v1/users", 404, "No such endpoint"),
    Path("an unknown version", "GET", "/api/v2/profiles", 404, "No such endpoint"),
    Path("DELETE of an id with a NUL", "DELETE", f"{URL}/a%00b", 404, "No profile has the distinct_id"),
    Path("DELETE of an id past 255 characters", "DELETE", f"{URL}/{'x' * 300}", 404, "No profile"),
    Path("DELETE of an id that is not UTF-8", "DELETE", f"{URL}/%FF", 404, "No profile"),
    Path("PUT on a profile", "PUT", f"{URL}/u1", 405, "Use DELETE"),
    Path("HEAD on the collection", "HEAD", URL, 405, ""),
    Path("OPTIONS on the collection", "OPTIONS", URL, 405, "Use POST"),
]


@pytest.mark.parametrize("case", PATHS, ids=[case.id for case in PATHS])
def test_odd_paths_and_methods_answer_json(case: Path, token: str) -> None:
    ProfileFactory(distinct_id="u1")
    answer = _client().generic(case.method, case.path, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert answer.status_code == case.status, answer.content[:300]
    assert answer["Content-Type"] == "application/json"
    assert case.says in answer.content.decode()
    assert Profile.objects.filter(distinct_id="u1").exists()


@pytest.mark.parametrize(
    ("path", "distinct_id"),
    [("a%2Fb", "a/b"), ("a%252Fb", "a%2Fb"), ("%C3%A9t%C3%A9", "été"), ("a%20b", "a b"), ("a%3Fb%23c", "a?b#c")],
)
def test_delete_reads_percent_encoded_ids_once(token: str, path: str, distinct_id: str) -> None:
    ProfileFactory(distinct_id=distinct_id)
    ProfileFactory(distinct_id="keep")
    answer = _client().delete(f"{URL}/{path}", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert answer.status_code == 200, answer.content
    assert answer.json() == {"deleted": 1, "distinct_id": distinct_id}
    assert list(Profile.objects.values_list("distinct_id", flat=True)) == ["keep"]


# --- Tokens -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "bearer\tcs_x", "Token cs_x", "Bearer " + "a" * 10_000, "Bearer cs_\u00e9\u00e9",
     "Basic dXNlcjpwYXNz"],
)
def test_malformed_authorization_is_401_and_writes_nothing(header: str) -> None:
    answer = _client().post(URL, data='[{"distinct_id": "u1"}]', content_type="application/json",
                            HTTP_AUTHORIZATION=header)
    assert answer.status_code == 401
    assert answer["WWW-Authenticate"].startswith("Bearer")
    assert not Profile.objects.exists()


def test_a_session_cookie_is_no_api_credential(admin_client: Client) -> None:
    # The API is CSRF-exempt because it accepts bearer tokens only: a logged-in browser
    # (a cross-site form) must not be able to write profiles with its session cookie.
    answer = admin_client.post(URL, data='[{"distinct_id": "u1"}]', content_type="application/json")
    assert answer.status_code == 401
    assert not Profile.objects.exists()


def test_the_token_is_never_logged(token: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("DEBUG"):
        _client().post(URL, data="[", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
        _client().post(URL, data="[]", content_type="text/plain", HTTP_AUTHORIZATION=f"Bearer {token}")
        _client().delete(f"{URL}/nobody", HTTP_AUTHORIZATION=f"Bearer {token}")
        _client().post(URL, data="[]", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}x")
    assert caplog.records
    assert token not in caplog.text
