"""One scrubbing for every message: given secrets, remembered secrets and tokens, in their echoed forms."""

from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

from destinations import scrubbing
from destinations.errors import DestinationError
from destinations.scrubbing import HIDDEN, Scrubber, scrub


def test_a_given_secret_is_hidden_as_sent_url_encoded_and_json_escaped():
    secret = 'pa ss+word/"9f'
    text = f"a {secret} b {quote(secret, safe='')} c {quote_plus(secret)} d {json.dumps(secret)[1:-1]}"

    assert scrub(text, [secret]) == f"a {HIDDEN} b {HIDDEN} c {HIDDEN} d {HIDDEN}"


def test_tokens_and_secrets_in_use_are_hidden_from_every_message():
    token = "remembered-token-6c1f0e3a9b"
    secret = "remembered-secret-2b7d41"
    scrubbing.token_remember(token)
    scrubbing.secret_remember(secret)

    assert scrub(f"token {token}, secret {secret}") == f"token {HIDDEN}, secret {HIDDEN}"
    # Typed errors are scrubbed when they are made, code included.
    error = DestinationError(f"said {secret}", code=token)
    assert (error.message, error.code) == (f"said {HIDDEN}", HIDDEN)


def test_short_values_are_not_remembered_for_every_destination():
    # "secret" would blank a word of every other destination's messages; it is still
    # scrubbed where it is this destination's own.
    scrubbing.secret_remember("secret")

    assert scrub("the client id/secret pair") == "the client id/secret pair"
    assert scrub("the client id/secret pair", ["secret"]) == f"the client id/{HIDDEN} pair"
    assert scrub("abc", ["abc"]) == "abc"  # shorter than any real secret: not a secret


def test_a_value_containing_another_is_hidden_whole():
    assert scrub("x longer-secret-value y", ["secret-value", "longer-secret-value"]) == f"x {HIDDEN} y"


def test_the_scrubber_of_a_run_hides_its_secret_and_remembers_each_text_once():
    scrubber = Scrubber(["run-secret-1234"])

    assert scrubber("no run-secret-1234 here") == f"no {HIDDEN} here"
    assert scrubber("no run-secret-1234 here") == f"no {HIDDEN} here"
    assert scrubber("") == ""
