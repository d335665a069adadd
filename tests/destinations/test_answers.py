"""Answers checked against their documented shape: the message names status, type and call, never the body."""

from __future__ import annotations

import pytest
import requests

from destinations.answers import Answer, media_type
from destinations.errors import UNEXPECTED_RESPONSE, UnexpectedResponseError, error_retriable


def response(status: int = 200, body: bytes = b"{}", content_type: str | None = "application/json") -> requests.Response:
    answer = requests.Response()
    answer.status_code = status
    answer._content = body
    if content_type is not None:
        answer.headers["Content-Type"] = content_type
    return answer


def answer(*args, **kwargs) -> Answer:
    return Answer(response(*args, **kwargs), "SFMC", "write rows", advice="They are sent again.")


@pytest.mark.parametrize(("made", "call", "says"), [
    (answer(200, b"<html>secret-body</html>", "text/html; charset=utf-8"), "json",
     "HTTP 200 (text/html), not JSON"),
    (answer(201, b"{}"), "json", "HTTP 201 (application/json), a status this call does not answer with"),
    (answer(200, b'{"items": [1, 2'), "json", "JSON that does not parse (cut short?)"),
    (answer(200, b"[" * 100_000 + b"]" * 100_000), "json", "JSON that does not parse"),
    (answer(200, b"[]"), "object", "an array where an object is documented"),
    (answer(200, b'"secret-body"'), "array", "a string where an array is documented"),
    (answer(200, b"{}", None), "json", "HTTP 200 (no content type), not JSON"),
    (answer(200, b"{}", "secret-body\x00"), "json", "HTTP 200 (an unreadable content type)"),
])
def test_an_undocumented_answer_is_an_unexpected_response(made: Answer, call: str, says: str) -> None:
    with pytest.raises(UnexpectedResponseError) as caught:
        getattr(made, call)()

    error = caught.value
    assert (error.code, error_retriable(error)) == (UNEXPECTED_RESPONSE, True)
    assert error.message.startswith("SFMC gave an unexpected answer to the request to write rows: ")
    assert says in error.message and error.message.endswith("They are sent again.")
    assert "secret-body" not in error.message


def test_fields_are_checked_by_type():
    made = answer(200, b'{"id": "", "n": true, "items": [{}, 3]}')
    data = made.object()

    for check, says in [
        (lambda: made.text(data, "id"), "without the text 'id'"),
        (lambda: made.count(data, "n"), "without the count 'n'"),
        (lambda: made.objects(data["items"], "items"), "entries of 'items' that are not objects"),
        (lambda: made.objects(None, "rows"), "without the array 'rows'"),
    ]:
        with pytest.raises(UnexpectedResponseError, match=says):
            check()


def test_the_documented_answer_is_returned():
    made = answer(202, b'{"requestId": "r-1", "count": 3, "rows": [{}]}', "application/json;charset=UTF-8")
    data = made.object(statuses=(200, 202))

    assert made.text(data, "requestId") == "r-1" and made.count(data, "count") == 3
    assert made.objects(data["rows"], "rows") == [{}]
    assert media_type(made.response) == "application/json"
