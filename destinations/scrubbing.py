"""The one scrubbing of credentials from text CohortSync stores, shows or logs.

A destination (or a proxy in front of it) may echo what it was sent: the client secret in
an error description, the access token in a per-row reason. Every message that carries a
destination's words goes through `scrub()` before it reaches an exception, a log line, a
run record, a failure row or a destination's connection status: the clients scrub what
they build, and the engine and the connection check scrub again before storing (a last
line of defence for a path someone forgets).

`scrub()` removes the secrets it is given plus every secret and access token this process
has handed to a destination (clients register them with `secret_remember` and
`token_remember`), in the forms an echo takes: as sent, URL-encoded and JSON-escaped.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

HIDDEN = "[hidden]"
# Shorter values would blank ordinary words of a message; no real secret or token is this short.
MIN_SECRET_LENGTH = 4
# What is remembered is scrubbed from every destination's messages, not only its own: a
# short one ("secret") would blank words of all of them. Real secrets and tokens are 20+
# characters; a shorter secret is still scrubbed from its own destination's messages.
MIN_REMEMBERED_LENGTH = 12
# Tokens live 20-60 minutes and secrets change rarely: a few hundred cover every
# destination a process talks to, and scrubbing stays cheap.
REMEMBERED_TOKENS = 256
REMEMBERED_SECRETS = 256

_lock = threading.Lock()
_tokens: deque[str] = deque(maxlen=REMEMBERED_TOKENS)
_secrets: deque[str] = deque(maxlen=REMEMBERED_SECRETS)
# The compiled pattern for the remembered values plus one set of extra secrets, rebuilt
# only when they change (scrub() runs for every stored message).
_pattern_cache: dict[tuple[str, ...], re.Pattern[str] | None] = {}


def _remember(store: deque[str], value: str) -> None:
    if not value or len(value) < MIN_REMEMBERED_LENGTH:
        return
    with _lock:
        if value in store:
            return
        store.append(value)
        _pattern_cache.clear()


def token_remember(value: str) -> None:
    """An access token this process uses: scrubbed from every message from now on."""
    _remember(_tokens, value)


def secret_remember(value: str) -> None:
    """A client secret this process sends: scrubbed from every message from now on."""
    _remember(_secrets, value)


def _forms(value: str) -> set[str]:
    """`value` as an echo may show it: as is, URL-encoded (form bodies), JSON-escaped."""
    return {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}


def _pattern(extra: tuple[str, ...]) -> re.Pattern[str] | None:
    with _lock:
        key = extra
        if key in _pattern_cache:
            return _pattern_cache[key]
        values = {*_tokens, *_secrets, *(v for v in extra if v and len(v) >= MIN_SECRET_LENGTH)}
        forms = {form for value in values for form in _forms(value)}
        # Longest first, so a value that contains another is replaced whole.
        ordered = sorted(forms, key=len, reverse=True)
        pattern = re.compile("|".join(re.escape(form) for form in ordered)) if ordered else None
        if len(_pattern_cache) > 64:
            _pattern_cache.clear()
        _pattern_cache[key] = pattern
        return pattern


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without `secrets` and without any secret or token this process has used."""
    if not text:
        return text
    pattern = _pattern(tuple(sorted({s for s in secrets if s})))
    return pattern.sub(HIDDEN, text) if pattern is not None else text


class Scrubber:
    """scrub() with a fixed set of secrets, remembering each distinct text it has seen:
    a run that stores a million failure rows has a handful of distinct messages."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = tuple(s for s in secrets if s)
        self._seen: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        scrubbed = self._seen.get(text)
        if scrubbed is None:
            scrubbed = scrub(text, self.secrets)
            if len(self._seen) < 10_000:
                self._seen[text] = scrubbed
        return scrubbed
