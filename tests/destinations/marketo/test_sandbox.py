"""The Marketo emulator answers like Marketo does (so the client cannot tell the difference)."""

from __future__ import annotations

import re
import threading

import pytest
import requests


@pytest.fixture
def base(sandbox) -> str:
    return sandbox.marketo_base_url


def _token(base: str) -> str:
    return requests.post(f"{base}/identity/oauth/token", data={
        "grant_type": "client_credentials", "client_id": "sandbox-client-id",
        "client_secret": "sandbox-client-secret"}, timeout=5).json()["access_token"]


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _sync(base: str, token: str, records: list, **extra) -> dict:
    body = {"action": "createOrUpdate", "lookupField": "email", "input": records, **extra}
    return requests.post(f"{base}/rest/v1/leads.json", json=body, headers=_auth(token), timeout=5).json()


def test_identity_accepts_query_or_form_and_returns_the_same_token_counting_down(base, marketo):
    params = {"grant_type": "client_credentials", "client_id": "sandbox-client-id",
              "client_secret": "sandbox-client-secret"}
    first = requests.get(f"{base}/identity/oauth/token", params=params, timeout=5)
    second = requests.post(f"{base}/identity/oauth/token", data=params, timeout=5).json()

    assert first.headers["Cache-Control"] == "no-store"
    assert first.json()["access_token"] == second["access_token"]
    assert re.fullmatch(r"[0-9a-f-]+:ab", second["access_token"])
    assert 3590 <= second["expires_in"] <= 3599
    assert marketo.state()["calls"]["tokens_issued"] == 1


def test_bad_credentials_get_the_real_401_body(base):
    response = requests.post(f"{base}/identity/oauth/token", data={
        "grant_type": "client_credentials", "client_id": "sandbox-client-id", "client_secret": "nope"}, timeout=5)

    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client", "error_description": "Bad client credentials"}


def test_data_calls_without_a_valid_token_get_601_or_602_as_http_200(base, marketo):
    missing = requests.get(f"{base}/rest/v1/leads/describe.json", timeout=5)
    token = _token(base)
    marketo.configure(expire_tokens=True)
    expired = requests.get(f"{base}/rest/v1/leads/describe.json", headers=_auth(token), timeout=5)

    assert missing.status_code == expired.status_code == 200
    assert missing.json()["errors"] == [{"code": "601", "message": "Access token invalid"}]
    assert expired.json()["errors"][0]["code"] == "602"
    assert re.fullmatch(r"[0-9a-f]+#[0-9a-f]+", missing.json()["requestId"])
    assert _token(base) != token


def test_sync_creates_then_updates_leads_matching_email_case_insensitively(base, marketo):
    token = _token(base)
    created = _sync(base, token, [{"email": "Ann@Example.com", "cohortProUsers": True}])
    updated = _sync(base, token, [{"email": "ann@example.com", "cohortProUsers": False}])

    assert created["result"][0]["status"] == "created"
    assert updated["result"] == [{"id": created["result"][0]["id"], "status": "updated"}]
    assert "errors" not in updated
    assert marketo.lead("ANN@example.com")["cohortProUsers"] is False


def test_sync_skips_bad_records_with_reasons_in_input_order(base, marketo):
    marketo.configure(leads=[{"email": "dup@x.com"}, {"email": "dup@x.com"}])
    token = _token(base)

    result = _sync(base, token, [
        {"email": "a@x.com", "cohortProUsers": True},
        {"email": "b@x.com", "noSuchField": True},
        {"email": "c@x.com", "cohortProUsers": "yes"},
        {"email": "dup@x.com", "cohortProUsers": True},
        {"email": "d@x.com", "cohortCrmLocked": True},
    ])["result"]

    assert [r["status"] for r in result] == ["created", "skipped", "skipped", "skipped", "skipped"]
    assert [r.get("reasons", [{}])[0].get("code") for r in result] == [None, "1006", "1003", "1007", "1003"]
    assert result[1]["reasons"][0]["message"] == "Field 'noSuchField' not found"


def test_sync_limits_batch_size_content_type_and_body_size(base, marketo):
    token = _token(base)
    too_many = _sync(base, token, [{"email": f"u{i}@x.com"} for i in range(301)])
    wrong_type = requests.post(f"{base}/rest/v1/leads.json", data="input=1", headers=_auth(token), timeout=5)
    too_big = requests.post(f"{base}/rest/v1/leads.json", json={"input": ["x" * 1_100_000]},
                            headers=_auth(token), timeout=5)

    assert too_many["success"] is False and too_many["errors"][0]["code"] == "1003"
    assert wrong_type.json()["errors"][0]["code"] == "612"
    assert too_big.status_code == 413
    assert marketo.state()["lead_count"] == 0


def test_rate_daily_and_concurrency_limits(base, marketo):
    token = _token(base)
    marketo.configure(calls_per_20s=2)
    codes = [requests.get(f"{base}/rest/v1/leads/describe.json", headers=_auth(token), timeout=5).json()
             .get("errors", [{}])[0].get("code") for _ in range(3)]
    assert codes == [None, None, "606"]

    marketo.reset()
    token = _token(base)
    marketo.configure(daily_quota=1)
    requests.get(f"{base}/rest/v1/leads/describe.json", headers=_auth(token), timeout=5)
    quota = requests.get(f"{base}/rest/v1/leads/describe.json", headers=_auth(token), timeout=5).json()
    assert quota["errors"][0]["code"] == "607"

    marketo.configure(daily_quota=100, max_concurrency=1, latency=0.3)
    answers: list[dict] = []
    threads = [threading.Thread(target=lambda: answers.append(requests.get(
        f"{base}/rest/v1/leads/describe.json", headers=_auth(token), timeout=5).json())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(str(a.get("errors", [{}])[0].get("code")) for a in answers) == ["615", "None"]


def test_bulk_import_moves_through_its_lifecycle_and_serves_failures_as_csv(base, marketo):
    marketo.configure(reject_emails={"bad@x.com": {"message": "Invalid email address"}})
    token = _token(base)
    content = b"email,cohortProUsers\r\na@x.com,true\r\nbad@x.com,true\r\nc@x.com,maybe\r\n"
    created = requests.post(f"{base}/bulk/v1/leads.json", data={"format": "csv"},
                            files={"file": ("leads.csv", content, "text/csv")}, headers=_auth(token), timeout=5).json()
    batch = created["result"][0]["batchId"]
    statuses = [requests.get(f"{base}/bulk/v1/leads/batch/{batch}.json", headers=_auth(token), timeout=5)
                .json()["result"][0] for _ in range(2)]
    failures = requests.get(f"{base}/bulk/v1/leads/batch/{batch}/failures.json", headers=_auth(token), timeout=5)

    assert created["result"][0]["status"] == "Queued"
    assert [s["status"] for s in statuses] == ["Importing", "Complete"]
    assert statuses[1]["numOfRowsFailed"] == 2 and statuses[1]["numOfLeadsProcessed"] == 1
    assert failures.headers["Content-Type"] == "text/csv;charset=UTF-8"
    assert failures.text.splitlines() == [
        "email,cohortProUsers,Import Failure Reason",
        "bad@x.com,true,Invalid email address",
        "c@x.com,maybe,Invalid data type in field Pro Users Cohort",
    ]
    assert marketo.lead("a@x.com")["cohortProUsers"] is True


def test_bulk_queue_limit_gives_1016_and_unknown_fields_fail_the_import(base, marketo):
    marketo.configure(bulk_queue_limit=1)
    token = _token(base)

    def upload(content: bytes) -> dict:
        return requests.post(f"{base}/bulk/v1/leads.json?format=csv", files={"file": ("l.csv", content)},
                             headers=_auth(token), timeout=5).json()

    first = upload(b"email,noSuchField\r\na@x.com,true\r\n")
    assert upload(b"email\r\nb@x.com\r\n")["errors"][0]["code"] == "1016"
    batch = first["result"][0]["batchId"]
    for _ in range(2):
        status = requests.get(f"{base}/bulk/v1/leads/batch/{batch}.json", headers=_auth(token), timeout=5).json()
    assert status["result"][0]["status"] == "Failed"
    assert "Field 'noSuchField' not found" in status["result"][0]["message"]


def test_inspection_endpoints_configure_reset_and_report_without_tokens(base, marketo):
    _sync(base, _token(base), [{"email": f"u{i}@x.com", "inCohortDemo": True} for i in range(5)])

    state = requests.get(f"{base}/_sandbox/state?limit=2", timeout=5).json()
    bad = requests.post(f"{base}/_sandbox/config", json={"no_such_knob": 1}, timeout=5)
    not_a_number = requests.post(f"{base}/_sandbox/config", json={"calls_per_20s": "many"}, timeout=5)
    good = requests.post(f"{base}/_sandbox/config", json={"token_ttl": 5}, timeout=5)
    requests.post(f"{base}/_sandbox/reset", timeout=5)

    assert state["lead_count"] == 5 and len(state["leads"]) == 2
    assert state["calls"]["by_endpoint"]["POST /rest/v1/leads.json"] == 1
    assert {f["name"] for f in state["fields"]} >= {"inCohortDemo", "cohortStaticVip", "cohortCrmLocked"}
    assert ":ab" not in str(state)
    assert bad.status_code == 400 and "no_such_knob" in bad.json()["error"]
    assert not_a_number.status_code == 400
    assert good.json()["config"]["token_ttl"] == 5
    assert marketo.state()["lead_count"] == 0 and marketo.config["token_ttl"] == 3600


def test_latency_is_the_whole_answer_time_and_timed_bulk_steps_import_during_the_step(base, marketo):
    import time

    token = _token(base)
    marketo.configure(latency=0.2)
    started = time.monotonic()
    requests.get(f"{base}/rest/v1/leads/describe.json", headers=_auth(token), timeout=5)
    # 0.2 s from arrival to answer, processing included (not 0.2 s plus the processing).
    assert 0.2 <= time.monotonic() - started < 0.4

    marketo.configure(latency=0.0, bulk_step_seconds=0.3)
    content = b"email,cohortProUsers\r\na@x.com,true\r\nb@x.com,false\r\n"
    created = requests.post(f"{base}/bulk/v1/leads.json", data={"format": "csv"},
                            files={"file": ("leads.csv", content, "text/csv")}, headers=_auth(token), timeout=5).json()
    batch = created["result"][0]["batchId"]

    def status() -> dict:
        return requests.get(f"{base}/bulk/v1/leads/batch/{batch}.json", headers=_auth(token), timeout=5).json()[
            "result"][0]

    seen = [status()["status"]]
    deadline = time.monotonic() + 5
    while seen[-1] != "Complete" and time.monotonic() < deadline:
        time.sleep(0.05)
        seen.append(status()["status"])
    assert seen[0] == "Queued" and "Importing" in seen and seen[-1] == "Complete"
    assert status()["numOfLeadsProcessed"] == 2
    assert marketo.lead("b@x.com")["cohortProUsers"] is False


def test_a_timed_bulk_job_waiting_for_an_import_slot_starts_when_the_slot_frees(base, marketo):
    import time

    token = _token(base)
    marketo.configure(latency=0.0, bulk_step_seconds=0.3, bulk_max_importing=1)
    content = b"email,cohortProUsers\r\na@x.com,true\r\n"

    def submit() -> int:
        return requests.post(f"{base}/bulk/v1/leads.json", data={"format": "csv"},
                             files={"file": ("leads.csv", content, "text/csv")}, headers=_auth(token),
                             timeout=5).json()["result"][0]["batchId"]

    def status(batch: int) -> str:
        return requests.get(f"{base}/bulk/v1/leads/batch/{batch}.json", headers=_auth(token), timeout=5).json()[
            "result"][0]["status"]

    started = time.monotonic()
    first, second = submit(), submit()
    done: dict[int, float] = {}
    while len(done) < 2 and time.monotonic() - started < 5:
        for batch in (first, second):
            if batch not in done and status(batch) == "Complete":
                done[batch] = time.monotonic() - started
        time.sleep(0.02)
    # Both queued for a step; the first imports for a step; only then the second imports
    # for a step: three steps, not two (it did not import while it waited for the slot).
    assert done[first] >= 0.6 and done[second] >= 0.9


def test_the_20_second_window_counts_arrivals_in_order_whatever_order_the_lock_lets_them_in(marketo):
    # Two calls arrived at 0.000 and 0.005 s; the later one took the lock first. At 20.003 s
    # the one from 0.000 has left the window and must not refuse the call.
    marketo.configure(calls_per_20s=2)
    marketo._enter(100.005)
    marketo._enter(100.000)

    marketo._enter(120.003)  # raises SandboxError 606 when the call from 100.000 still counts
