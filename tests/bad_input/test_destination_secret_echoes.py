"""A destination (or a proxy) that echoes the client secret or the access token.

Every path that stores or logs a destination's words is tried, for each client: per-user
reasons (failure rows), run-level errors (the run's message and code), the connection check
(the destination's status) and what is logged. The secret and every token the emulator
issued must appear nowhere: not as sent, not URL-encoded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import pytest
import requests

from destinations.models import Destination
from destinations.services import destination_check_connection
from syncs.models import RunStatus, SyncFailure, SyncRun
from tests.bad_input.destination_paths import (
    ASYNC,
    CONTACTS,
    MARKETO_BULK,
    MARKETO_SYNC,
    ROWSET,
    SANDBOX_ID,
    ClientPath,
    fast_connectors,  # noqa: F401 (fixture)
)
from tests.syncs.fakes import run_now

pytestmark = [pytest.mark.django_db, pytest.mark.e2e]

# Characters that URL-encoding changes, so an echo of the form body differs from the secret.
SECRET = "Echoed+Secret/Value=9d2f-77"
ECHO = f"refused {SECRET} ({quote_plus(SECRET)}) with token {{{{token}}}}"
USERS = 3


@dataclass(frozen=True)
class Echo:
    id: str
    path: ClientPath
    answers: list[dict[str, Any]]
    # "run": a sync run; "check": the connection check.
    action: str = "run"
    # Users the emulator refuses, so that per-row results / failure files are read.
    rejected: int = 0
    users: int = USERS
    # Whether the destination's words reach a message at all (Marketo's identity refusals
    # never do): then they must be there, scrubbed.
    shown: bool = True


def answer(path: str, value: Any, *, status: int = 200, method: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"path": path, "status": status, "json": value, **({"method": method} if method else {}), **extra}


SFMC_ENVELOPE = {"message": ECHO, "errorcode": 20002, "documentation": ""}
MARKETO_603 = {"requestId": "e42b#14272d07d78", "success": False, "errors": [{"code": "603", "message": ECHO}]}

ECHOES = [
    # --- SFMC -------------------------------------------------------------------------------
    Echo("rowset-row-reasons", ROWSET, [answer("/hub/v1/dataevents/.*/rowset$", {
        "message": "Unable to save rows", "errorcode": 10006, "additionalErrors": [
            {"message": ECHO, "errorcode": 10000}]}, status=400, method="POST")]),
    Echo("async-row-results", ASYNC, [answer("/async/[^/]+/results$", {
        "page": 1, "pageSize": 50, "count": USERS, "items": [
            {"status": "Error", "errorCode": "UnexpectedError", "message": ECHO,
             "errors": [{"name": "subscriberkey", "errorMessage": ECHO, "errorCode": 70001}]}] * USERS})],
        rejected=1),
    Echo("contact-reasons", CONTACTS, [answer("/contacts/v1/contacts$", {
        "operationStatus": "FAIL", "hasErrors": True, "resultMessages": [
            {"resultType": "Validation", "resultClass": "Error", "resultCode": "ValidationFailed",
             "message": ECHO}]})]),
    Echo("run-error", ROWSET, [answer("/customobjects/[^/]+/fields$", SFMC_ENVELOPE, status=403)]),
    Echo("run-error-in-async-submit", ASYNC, [answer("/async/dataextensions/.*/rows$", {
        "requestId": "r-1", "resultMessages": [
            {"resultType": "Validation", "resultClass": "Error", "resultCode": "{{token}}", "message": ECHO}]},
        status=400)]),
    Echo("check-token-refused", ROWSET, [answer("/auth/v2/token$", {
        "error": "invalid_client", "error_description": ECHO}, status=401)], action="check"),
    Echo("check-schema-refused", CONTACTS, [answer("/attributeSetDefinitions$", SFMC_ENVELOPE, status=403)],
         action="check"),
    # --- Marketo ----------------------------------------------------------------------------
    # Issue 10, item 6: a per-lead reason echoing the secret was stored verbatim.
    Echo("lead-reasons", MARKETO_SYNC, [answer("/rest/v1/leads.json$", {
        "requestId": "a#b", "success": True, "result": [
            {"status": "skipped", "reasons": [{"code": "1003", "message": ECHO}]}] * USERS}, method="POST")]),
    Echo("bulk-failure-reasons", MARKETO_BULK, [{
        "path": r"/bulk/v1/leads/batch/\d+/failures\.json$", "content_type": "text/csv;charset=UTF-8",
        "body": f'email,cohortProUsers,Import Failure Reason\r\nuser0@example.com,true,"{ECHO}"\r\n'}],
        rejected=1, users=10),
    Echo("run-error", MARKETO_SYNC, [answer("/leads/describe.json$", MARKETO_603)]),
    Echo("run-error-code", MARKETO_SYNC, [answer("/rest/v1/leads.json$", {
        "requestId": "a#b", "success": False, "errors": [{"code": "{{token}}", "message": ECHO}]}, method="POST")]),
    Echo("check-identity-refused", MARKETO_SYNC, [answer("/identity/oauth/token$", {
        "error": "invalid_client", "error_description": ECHO}, status=401)], action="check", shown=False),
    Echo("check-describe-refused", MARKETO_SYNC, [answer("/leads/describe.json$", MARKETO_603)], action="check"),
]


def _issued_tokens(path: ClientPath, sandbox) -> set[str]:  # type: ignore[no-untyped-def]
    if path.is_marketo:
        # Marketo hands back the same token until it expires: ask for it as a client would.
        response = requests.post(f"{sandbox.marketo_base_url}/identity/oauth/token", timeout=10, data={
            "grant_type": "client_credentials", "client_id": SANDBOX_ID, "client_secret": SECRET})
        return {response.json()["access_token"]}
    return set(sandbox.sandboxes.sfmc.tokens)


def _stored_text() -> str:
    """Every stored text a user can see: runs, failures, destinations (but the secret's own
    encrypted column)."""
    rows = [
        *SyncRun.objects.values(),
        *SyncFailure.objects.values(),
        *Destination.objects.values(*[f.name for f in Destination._meta.concrete_fields if f.name != "client_secret"]),
    ]
    return "\n".join(str(row) for row in rows)


@pytest.mark.usefixtures("fast_connectors")
@pytest.mark.parametrize("echo", ECHOES, ids=lambda e: f"{e.path.name}-{e.id}")
def test_an_echoed_secret_or_token_is_stored_and_logged_nowhere(echo: Echo, sandbox, caplog) -> None:
    path = echo.path
    emulator = path.emulator(sandbox)
    emulator.configure(client_secret=SECRET)
    sync, emails = path.sync(sandbox, users=echo.users, secret=SECRET)
    if echo.rejected:
        path.reject(sandbox, emails[: echo.rejected], "Invalid value")
    emulator.configure(answers=echo.answers)

    with caplog.at_level(logging.DEBUG):
        if echo.action == "check":
            report = destination_check_connection(destination=sync.destination)
            assert not report.ok and report.summary
        else:
            run = run_now(sync)
            assert run.status in (RunStatus.FAILED, RunStatus.PARTIAL) and run.error_message

    emulator.configure(answers=[])
    tokens = _issued_tokens(path, sandbox)
    stored = _stored_text()
    assert ("[hidden]" in stored) is echo.shown
    for value in (SECRET, quote_plus(SECRET), *tokens):
        assert value not in stored
        assert value not in caplog.text
