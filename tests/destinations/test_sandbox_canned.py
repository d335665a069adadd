"""The emulators' canned answers: a chosen endpoint answers with a given status, type and body."""

from __future__ import annotations

import pytest
import requests


@pytest.mark.parametrize("prefix", ["sfmc", "marketo"])
def test_canned_answers_are_set_over_http_and_existing_settings_keep_working(sandbox, prefix):
    config = f"{sandbox.url}/{prefix}/_sandbox/config"
    token_path = "/auth/v2/token" if prefix == "sfmc" else "/identity/oauth/token"
    knob = {"sfmc": {"fail_next": 0}, "marketo": {"token_ttl": 60}}[prefix]

    set_up = requests.post(config, timeout=5, json={**knob, "answers": [
        {"path": f"{token_path}$", "status": 200, "content_type": "text/html", "body": "<html>{{token}}</html>",
         "times": 1}]})
    canned = requests.post(f"{sandbox.url}/{prefix}{token_path}", headers={"Authorization": "Bearer tok-1"},
                           timeout=5)
    real = requests.post(f"{sandbox.url}/{prefix}{token_path}", timeout=5, data={
        "grant_type": "client_credentials", "client_id": "sandbox-client-id",
        "client_secret": "sandbox-client-secret"})

    assert set_up.status_code == 200
    assert (canned.status_code, canned.headers["Content-Type"], canned.text) == (200, "text/html", "<html>tok-1</html>")
    assert real.json()["access_token"]  # `times` used up: the emulator answers again


@pytest.mark.parametrize("prefix", ["sfmc", "marketo"])
@pytest.mark.parametrize(("answers", "says"), [
    ({"path": "x"}, "must be a list"),
    ([{"status": 200}], "needs a 'path'"),
    ([{"path": "("}], "not a regular expression"),
    ([{"path": "x", "status": 99}], "HTTP status"),
    ([{"path": "x", "body": "a", "json": []}], "not both"),
    ([{"path": "x", "times": 0}], "'times'"),
    ([{"path": "x", "colour": "red"}], "colour"),
])
def test_bad_canned_answers_are_refused_with_a_reason(sandbox, prefix, answers, says):
    refused = requests.post(f"{sandbox.url}/{prefix}/_sandbox/config", json={"answers": answers}, timeout=5)

    assert refused.status_code == 400 and says in refused.json()["error"]


def test_an_empty_list_clears_them_and_json_bodies_are_encoded(sandbox):
    sfmc = sandbox.sandboxes.sfmc
    sfmc.configure(answers=[{"path": "/attributeSetDefinitions$", "json": [1, 2], "status": 201}])
    url = f"{sandbox.url}/sfmc/rest/contacts/v1/attributeSetDefinitions"

    canned = requests.get(url, timeout=5)
    sfmc.configure(answers=[])
    real = requests.get(url, timeout=5)

    assert (canned.status_code, canned.headers["Content-Type"], canned.json()) == (201, "application/json", [1, 2])
    assert real.status_code == 401  # the emulator again: no token, not authorised
