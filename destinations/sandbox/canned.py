"""Canned answers, shared by both emulators: chosen requests get a given status, content
type and body instead of the emulated API's answer, as from a proxy, a captive portal or a
gateway that cut a body short.

Set with the `answers` setting (Python `configure(answers=[...])` or
`POST /<prefix>/_sandbox/config {"answers": [...]}`), which replaces the list; `[]` clears
it. Each entry:

    {"path": "/rowset$",            # a regular expression searched in the request path
     "method": "POST",              # optional: only this method
     "status": 200,                 # optional, 200
     "content_type": "text/html",   # optional: application/json with "json", else
                                    # text/plain; "" sends no Content-Type at all
     "body": "<html>...",           # raw text, or
     "json": [...],                 # any JSON value, encoded
     "times": 1}                    # optional: only the next N matching requests

In a body, `{{token}}` becomes the bearer token the request carried, so a test can check
that an echoed token never reaches a message. A canned answer is given before the
emulator authenticates, counts limits or handles the request: the emulated API never sees it.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

TOKEN_PLACEHOLDER = "{{token}}"


@dataclass
class CannedAnswer:
    path: re.Pattern[str]
    method: str
    status: int
    content_type: str
    body: str
    times: int | None

    def matches(self, request: Request) -> bool:
        return (not self.method or request.method == self.method) and bool(self.path.search(request.path))

    def response(self, request: Request) -> Response:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        response = Response(self.body.replace(TOKEN_PLACEHOLDER, token), status=self.status)
        if self.content_type:
            response.headers["Content-Type"] = self.content_type
        else:
            del response.headers["Content-Type"]
        return response


def canned_answer_parse(entry: Any) -> CannedAnswer:
    """One entry of the `answers` setting; ValueError says what is wrong with it."""
    if not isinstance(entry, dict):
        raise ValueError("Each canned answer must be an object with at least a 'path'.")
    unknown = sorted(set(entry) - {"path", "method", "status", "content_type", "body", "json", "times"})
    if unknown:
        raise ValueError(f"Unknown canned answer key(s): {', '.join(unknown)}.")
    try:
        path = re.compile(str(entry["path"]))
    except KeyError:
        raise ValueError("A canned answer needs a 'path' (a regular expression).") from None
    except re.error as exc:
        raise ValueError(f"The canned answer path is not a regular expression: {exc}.") from None
    if "body" in entry and "json" in entry:
        raise ValueError("A canned answer has a 'body' or a 'json', not both.")
    status = entry.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError("A canned answer's 'status' must be an HTTP status (100-599).")
    times = entry.get("times")
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
        raise ValueError("A canned answer's 'times' must be a whole number of at least 1.")
    if "json" in entry:
        body, default_type = json.dumps(entry["json"]), "application/json"
    else:
        body, default_type = str(entry.get("body", "")), "text/plain"
    return CannedAnswer(
        path=path,
        method=str(entry.get("method") or "").upper(),
        status=status,
        content_type=str(entry.get("content_type", default_type) or ""),
        body=body,
        times=times,
    )


class CannedAnswers:
    """The current canned answers of one emulator (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._answers: list[CannedAnswer] = []

    def replace(self, entries: Any) -> None:
        if not isinstance(entries, list):
            raise ValueError("'answers' must be a list of canned answers ([] clears them).")
        parsed = [canned_answer_parse(entry) for entry in entries]
        with self._lock:
            self._answers = parsed

    def take(self, request: Request) -> Response | None:
        """The canned answer for this request, or None to let the emulator answer."""
        with self._lock:
            for answer in self._answers:
                if answer.matches(request):
                    if answer.times is not None:
                        answer.times -= 1
                        if answer.times == 0:
                            self._answers.remove(answer)
                    return answer.response(request)
        return None
