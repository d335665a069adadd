"""Destination answers that are not the documented ones, on every path of every client.

Each case makes the emulator answer one endpoint with something else (a proxy's HTML page,
a truncated body, JSON of the wrong type, missing fields, a count that does not match what
was sent) through its canned answers (destinations.sandbox.canned), runs a real sync, and
checks that:
- nobody is acknowledged (no synced state moves);
- the users of a write get a retriable failure with the code `unexpected_response` whose
  message names the HTTP status, the content type and the call, never the body; an answer
  that concerns the whole run (token, schema) fails the run with its own message;
- nothing is a traceback or an internal error;
- once the destination answers properly, the next run sends every one of them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pytest

from destinations.errors import UNEXPECTED_RESPONSE
from syncs.models import RunStatus, SyncFailure
from tests.bad_input.destination_paths import (
    ASYNC,
    CONTACTS,
    MARKETO_BULK,
    MARKETO_SYNC,
    ROWSET,
    USERS,
    ClientPath,
    fast_connectors,  # noqa: F401 (fixture)
)
from tests.syncs.fakes import run_now, synced_state

pytestmark = [pytest.mark.django_db, pytest.mark.e2e]

# In every canned body that can hold it: no message may ever show it.
SENTINEL = "PROXY-BODY-7f3a"
HTML = f"<html><body>{SENTINEL}: please log in</body></html>"


@dataclass(frozen=True)
class Case:
    id: str
    path: ClientPath
    answer: dict[str, Any]
    # What the run's message (and each failure's) must say.
    shows: str
    run_level: bool = False
    code: str = UNEXPECTED_RESPONSE
    # Users the emulator refuses, so that the per-row results / failure files are read.
    rejected: int = 0
    target_field: str | None = None
    # Other emulator settings for the case (kept for the second run).
    setup: dict[str, Any] = field(default_factory=dict)


def html(path: str, *, method: str | None = None, status: int = 200) -> dict[str, Any]:
    return {"path": path, "status": status, "content_type": "text/html; charset=utf-8", "body": HTML,
            **({"method": method} if method else {})}


def as_json(path: str, value: Any, *, method: str | None = None, status: int = 200) -> dict[str, Any]:
    return {"path": path, "status": status, "json": value, **({"method": method} if method else {})}


def truncated(path: str, body: str, *, method: str | None = None) -> dict[str, Any]:
    return {"path": path, "content_type": "application/json", "body": body,
            **({"method": method} if method else {})}


SFMC_TOKEN = "/auth/v2/token$"
ROWSET_WRITE = "/hub/v1/dataevents/.*/rowset$"
DE_LOOKUP = "/customobjectdata/key/.*/rowset$"
DE_FIELDS = "/customobjects/[^/]+/fields$"
DE_ADD_FIELD = "/customobjectsasync/[^/]+/fields$"
ASYNC_SUBMIT = "/async/dataextensions/.*/rows$"
ASYNC_STATUS = "/async/[^/]+/status$"
ASYNC_RESULTS = "/async/[^/]+/results$"
DEFINITIONS = "/attributeSetDefinitions$"
DEFINITION = "/attributeSetDefinitions/[^/]+$"
CONTACT = "/contacts/v1/contacts$"
IDENTITY = "/identity/oauth/token$"
DESCRIBE = "/leads/describe.json$"
LEADS = "/rest/v1/leads.json$"
BULK_CREATE = "/bulk/v1/leads.json$"
BULK_STATUS = r"/bulk/v1/leads/batch/\d+\.json$"
BULK_FAILURES = r"/bulk/v1/leads/batch/\d+/failures\.json$"

CSV = "text/csv;charset=UTF-8"

CASES = [
    # --- SFMC rowset (issue 10, item 3: a 2xx that is not the rowset answer) -----------------
    Case("html-page", ROWSET, html(ROWSET_WRITE, method="POST"), "HTTP 200 (text/html)"),
    Case("json-not-the-rowset", ROWSET, as_json(ROWSET_WRITE, {"ok": True, "note": SENTINEL}, method="POST"),
         "an object where an array is documented"),
    Case("fewer-rows-echoed", ROWSET, as_json(ROWSET_WRITE, [{"keys": {}, "values": {}}], method="POST"),
         f"1 rows echoed for {USERS} sent"),
    Case("truncated", ROWSET, truncated(ROWSET_WRITE, '[{"keys": {"SubscriberKey": "us', method="POST"),
         "JSON that does not parse"),
    Case("no-content", ROWSET, {"path": ROWSET_WRITE, "method": "POST", "status": 204, "content_type": ""},
         "HTTP 204 (no content type)"),
    # --- SFMC async upsert: submit, status, results ------------------------------------------
    Case("submit-html", ASYNC, html(ASYNC_SUBMIT, status=202), "HTTP 202 (text/html)"),
    Case("submit-without-request-id", ASYNC, as_json(ASYNC_SUBMIT, {"resultMessages": []}, status=202),
         "without the text 'requestId'"),
    Case("status-array", ASYNC, as_json(ASYNC_STATUS, []), "an array where an object is documented"),
    Case("status-html", ASYNC, html(ASYNC_STATUS), "read the status of queued upsert"),
    Case("status-complete-without-result", ASYNC, as_json(ASYNC_STATUS, {"status": {"requestStatus": "Complete"}}),
         "a completed upsert without its 'resultStatus'"),
    Case("status-truncated", ASYNC, truncated(ASYNC_STATUS, '{"status": {"requestStatus": "Compl'),
         "JSON that does not parse"),
    Case("results-count", ASYNC, as_json(ASYNC_RESULTS, {"page": 1, "pageSize": 50, "count": 1, "items": [
        {"status": "OK", "message": SENTINEL}]}), f"a count of 1 results for {USERS} rows", rejected=2),
    Case("results-html", ASYNC, html(ASYNC_RESULTS), "read the per-row results", rejected=2),
    # --- SFMC schema and token: the whole run ------------------------------------------------
    Case("token-html", ROWSET, html(SFMC_TOKEN), "SFMC's token endpoint gave an unexpected answer", run_level=True),
    Case("token-truncated", ROWSET, truncated(SFMC_TOKEN, '{"access_token": "eyJhbGciOi'),
         "JSON that does not parse", run_level=True),
    Case("token-without-instance-url", ROWSET, as_json(SFMC_TOKEN, {"access_token": "abc", "expires_in": 1079}),
         "without a REST instance URL", run_level=True, code="bad_token_response"),
    Case("lookup-html", ROWSET, html(DE_LOOKUP, method="GET"), "find data extension 'CohortSync_Demo'", run_level=True),
    Case("fields-array", ROWSET, as_json(DE_FIELDS, []), "read the data extension's columns", run_level=True),
    Case("field-without-name", ROWSET, as_json(DE_FIELDS, {"fields": [{"type": "Text", "note": SENTINEL}]}),
         "without the text 'name'", run_level=True),
    Case("add-column-html", ROWSET, html(DE_ADD_FIELD, status=202), "add the column 'New_Cohort_Column'",
         run_level=True, target_field="New_Cohort_Column"),
    # --- SFMC contacts: attribute sets (the run), PATCH (each contact) ------------------------
    Case("definitions-array", CONTACTS, as_json(DEFINITIONS, []), "list the attribute sets", run_level=True),
    Case("definitions-html", CONTACTS, html(DEFINITIONS), "HTTP 200 (text/html)", run_level=True),
    Case("definition-without-attributes", CONTACTS, as_json(DEFINITION, {"id": "x", "note": SENTINEL}),
         "read the attribute set", run_level=True, setup={"definitions_include_attributes": False}),
    Case("patch-html", CONTACTS, html(CONTACT), "update a contact: HTTP 200 (text/html)"),
    Case("patch-without-operation-status", CONTACTS, as_json(CONTACT, {"contactKey": "x", "note": SENTINEL}),
         "without an 'operationStatus'"),
    Case("patch-truncated", CONTACTS, truncated(CONTACT, '{"operationStatus": "O'), "JSON that does not parse"),
    Case("patch-accepted-not-done", CONTACTS, {"path": CONTACT, "status": 202}, "HTTP 202"),
    # --- Marketo identity (issue 10, item 8) and describe: the whole run ---------------------
    Case("identity-truncated", MARKETO_SYNC, truncated(IDENTITY, '{"access_token": "cdf01657-110d'),
         "Marketo's identity endpoint gave an unexpected answer", run_level=True),
    Case("identity-array", MARKETO_SYNC, as_json(IDENTITY, []), "an array where an object is documented",
         run_level=True),
    Case("identity-html", MARKETO_SYNC, html(IDENTITY), "issue an access token: HTTP 200 (text/html)",
         run_level=True),
    Case("describe-html", MARKETO_SYNC, html(DESCRIBE), "read the lead fields", run_level=True),
    Case("describe-result-not-array", MARKETO_SYNC, as_json(DESCRIBE, {"success": True, "result": {}}),
         "without the array 'result'", run_level=True),
    # --- Marketo leads.json createOrUpdate (issue 10, item 8) --------------------------------
    Case("leads-array", MARKETO_SYNC, as_json(LEADS, [], method="POST"), "create or update leads"),
    Case("leads-count", MARKETO_SYNC, as_json(LEADS, {"success": True, "result": [{"id": 1, "status": "created"}]},
         method="POST"), f"1 results for {USERS} leads"),
    Case("leads-html", MARKETO_SYNC, html(LEADS, method="POST"), "HTTP 200 (text/html)"),
    Case("leads-without-success", MARKETO_SYNC, as_json(LEADS, {"result": [], "note": SENTINEL}, method="POST"),
         'without "success": true'),
    Case("leads-without-status", MARKETO_SYNC, as_json(LEADS, {"success": True, "result": [
        {"id": n, "note": SENTINEL} for n in range(USERS)]}, method="POST"), "no documented status"),
    # --- Marketo bulk import: create, status (issue 10, item 8), failures --------------------
    Case("create-array", MARKETO_BULK, as_json(BULK_CREATE, []), "queue a bulk lead import"),
    Case("create-without-batch-id", MARKETO_BULK, as_json(BULK_CREATE, {"success": True, "result": [
        {"status": "Queued"}]}), "without the number 'batchId'"),
    Case("status-array", MARKETO_BULK, as_json(BULK_STATUS, []), "read the status of bulk import"),
    Case("status-complete-without-counts", MARKETO_BULK, as_json(BULK_STATUS, {"success": True, "result": [
        {"batchId": 1, "status": "Complete"}]}), "without the count 'numOfRowsFailed'"),
    Case("status-undocumented", MARKETO_BULK, as_json(BULK_STATUS, {"success": True, "result": [
        {"batchId": 1, "status": SENTINEL}]}), "without a documented import 'status'"),
    Case("failures-json", MARKETO_BULK, as_json(BULK_FAILURES, {"success": True, "result": []}),
         "read the failed rows of bulk import", rejected=2),
    Case("failures-missing-rows", MARKETO_BULK, {"path": BULK_FAILURES, "content_type": CSV,
         "body": "email,cohortProUsers,Import Failure Reason\r\nuser0@example.com,true,Invalid\r\n"},
         "1 rows where the import's status counted 2", rejected=2),
    Case("failures-without-email", MARKETO_BULK, {"path": BULK_FAILURES, "content_type": CSV,
         "body": "Import Failure Reason\r\nInvalid\r\nInvalid\r\n"}, "without the 'email' and reason columns",
         rejected=2),
    Case("failures-of-another-file", MARKETO_BULK, {"path": BULK_FAILURES, "content_type": CSV,
         "body": "email,cohortProUsers,Import Failure Reason\r\nann@other.com,true,Invalid\r\n"
                 "bob@other.com,true,Invalid\r\n"}, "not in this import file", rejected=2),
]


@pytest.mark.usefixtures("fast_connectors")
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.path.name}-{c.id}")
def test_an_undocumented_answer_acknowledges_nobody_and_the_next_run_sends_them(case: Case, sandbox, caplog) -> None:
    path = case.path
    sync, emails = path.sync(sandbox, target_field=case.target_field)
    emulator = path.emulator(sandbox)
    if case.rejected:
        path.reject(sandbox, emails[: case.rejected], "Invalid value")
    emulator.configure(answers=[case.answer], **case.setup)

    with caplog.at_level(logging.INFO):
        run = run_now(sync)

    assert synced_state(sync) == {}
    assert run.status == RunStatus.FAILED
    assert (run.error_code, run.succeeded_adds) == (case.code, 0)
    assert case.shows in run.error_message
    failures = list(SyncFailure.objects.filter(run=run))
    if case.run_level:
        assert run.error_message.endswith("Nothing was sent.")
        assert failures == [] and run.attempted_adds == 0
    else:
        assert run.failed_adds == len(emails)
        assert sorted(f.identity_value for f in failures) == sorted(emails)
        assert {(f.code, f.retriable) for f in failures} == {(UNEXPECTED_RESPONSE, True)}
        assert all(case.shows in f.message for f in failures)
    assert SENTINEL not in run.error_message and all(SENTINEL not in f.message for f in failures)
    assert "Traceback" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    emulator.configure(answers=[])
    path.clear_rejections(sandbox)
    again = run_now(sync)

    assert again.status == RunStatus.SUCCEEDED, again.error_message
    assert synced_state(sync) == dict.fromkeys(emails, True)
    written = path.written(sandbox, field=case.target_field)
    assert {email: written.get(email) for email in emails} == dict.fromkeys(emails, path.member_value())
