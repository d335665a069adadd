"""The bulk import path for large runs: CSV files, the import queue, failure files."""

from __future__ import annotations

import csv
import io

import pytest
import responses

from destinations.base import MembershipChange, PushOutcome, SendPlan, UnitKind
from destinations.errors import PermanentError, TransientError
from destinations.marketo import bulk
from destinations.marketo.connector import MarketoConnector

from .conftest import config_for, target

REAL = "https://123-abc-456.mktorest.com"


class FakeTime:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def bulk_connector(sandbox, fake_time) -> MarketoConnector:
    config = config_for(sandbox.marketo_base_url, bulk_threshold=10)
    connector = MarketoConnector(config, sleep=fake_time.sleep, clock=fake_time.clock)
    assert connector.send_plan(11).units == UnitKind.FILES
    return connector


def _import(connector: MarketoConnector, changes: list[MembershipChange], field: str = "cohortProUsers") -> list[PushOutcome]:
    """Send `changes` as the engine does above bulk_threshold: one file, filled, imported."""
    file = connector.new_file(target(field))
    assert file.add_many([(c.identity, c.is_member) for c in changes]) == len(changes)
    return connector.push_file(target(field), file)


def test_runs_above_the_threshold_use_files_of_at_most_10_mb(make_connector):
    connector = make_connector(bulk_threshold=50_000, max_concurrency=5)

    assert connector.send_plan(50_000) == SendPlan(UnitKind.BATCHES, batch_size=300, concurrency=5)
    files = connector.send_plan(50_001)
    assert files.units == UnitKind.FILES
    assert files.batch_size * bulk.ESTIMATED_ROW_BYTES <= 10_000_000 and files.batch_size >= 100_000
    # Only as many files as Marketo imports at once, plus two pairs queued behind them (so
    # each pair is through its queued step before its slots free), are out: 4 of Marketo's
    # 10 queue places stay free for other integrations.
    assert make_connector(bulk_threshold=50_000, max_concurrency=10).send_plan(50_001).concurrency == 6
    assert make_connector(bulk_threshold=50_000, max_concurrency=4).send_plan(50_001).concurrency == 4


def test_the_send_plan_depends_on_the_run_size_alone(make_connector):
    connector = make_connector(bulk_threshold=100)

    # A large run asked about first changes nothing for a small one: no mode is remembered.
    assert connector.send_plan(60_000).units == UnitKind.FILES
    assert connector.send_plan(100).units == UnitKind.BATCHES
    assert connector.send_plan(101) == connector.send_plan(60_000)


def test_bulk_import_reports_failures_per_user_and_writes_the_rest(bulk_connector, marketo, fake_time):
    marketo.configure(
        reject_emails={"bad1@example.com": {"message": "Invalid email address"},
                       "bad2@example.com": {"message": "Lead is blocklisted"}},
        leads=[{"email": "dup@example.com"}, {"email": "dup@example.com"},
               {"email": "leaver@example.com", "cohortProUsers": True}],
    )
    members = [f"m{i}@example.com" for i in range(40)] + ["bad1@example.com", "bad2@example.com", "dup@example.com"]
    changes = [MembershipChange(e, True) for e in members] + [MembershipChange("leaver@example.com", False)]

    failed = {o.identity: o for o in _import(bulk_connector, changes)}

    # Only the refused rows come back; every other row of the file was imported.
    assert set(failed) == {"bad1@example.com", "bad2@example.com"}
    assert not any(o.ok for o in failed.values())
    assert "Invalid email address" in failed["bad1@example.com"].message
    assert "Check the user's email address" in failed["bad1@example.com"].message
    assert "Lead is blocklisted" in failed["bad2@example.com"].message
    assert marketo.lead("m39@example.com")["cohortProUsers"] is True
    assert marketo.lead("leaver@example.com")["cohortProUsers"] is False
    assert marketo.lead("bad1@example.com") is None
    state = marketo.state()
    assert [job["status"] for job in state["bulk_jobs"]] == ["Complete"]
    assert "POST /rest/v1/leads.json" not in state["calls"]["by_endpoint"]
    assert state["calls"]["by_endpoint"]["GET /bulk/v1/leads/batch/{id}/failures.json"] == 1
    assert fake_time.sleeps and max(fake_time.sleeps) <= bulk.POLL_MAX_SECONDS


def test_a_full_import_queue_is_waited_for(bulk_connector, marketo, fake_time):
    marketo.configure(inject=[{"code": "1016", "times": 7, "path": "/bulk/v1/leads.json"}])
    changes = [MembershipChange(f"u{i}@example.com", True) for i in range(20)]

    assert _import(bulk_connector, changes) == []
    assert fake_time.sleeps.count(30.0) == 7
    assert marketo.state()["lead_count"] == 20


def test_a_queue_that_stays_full_gives_up_after_a_bounded_wait(bulk_connector, marketo, fake_time):
    marketo.configure(bulk_queue_limit=0)
    changes = [MembershipChange(f"u{i}@example.com", True) for i in range(20)]

    with pytest.raises(TransientError, match=r"queue stayed full for 3\d minutes"):
        _import(bulk_connector, changes)
    assert fake_time.now >= bulk.QUEUE_MAX_WAIT_SECONDS


def test_an_import_that_never_finishes_is_given_up_with_its_batch_id(bulk_connector, marketo, fake_time):
    # Never advances on its own; the real-time rate limit would trip on hours of fake polling.
    marketo.configure(bulk_step_seconds=10_000_000, calls_per_20s=100_000)
    changes = [MembershipChange(f"u{i}@example.com", True) for i in range(20)]

    with pytest.raises(TransientError, match="bulk import 3401 was still 'Queued'"):
        _import(bulk_connector, changes)


def test_csv_files_are_rfc4180():
    file = bulk.CsvFile(field="cohortX")

    assert file.add_many([("a@x.com", True), ('"quoted",b@x.com', False)]) == 2
    content = file.take()

    assert content.startswith(b"email,cohortX\r\na@x.com,true\r\n")
    assert list(csv.reader(io.StringIO(content.decode()))) == [
        ["email", "cohortX"], ["a@x.com", "true"], ['"quoted",b@x.com', "false"]]


def test_a_file_over_the_instance_limit_is_refused_with_a_sentence(bulk_connector, marketo):
    marketo.configure(max_bulk_bytes=500)
    changes = [MembershipChange(f"user{i}@example.com", True) for i in range(40)]

    with pytest.raises(PermanentError, match="at most 10 MB"):
        _import(bulk_connector, changes)


@responses.activate
def test_a_failed_import_stops_with_marketos_reason(fake_time):
    responses.post(f"{REAL}/identity/oauth/token", json={"access_token": "t:ab", "expires_in": 3599})
    responses.get(f"{REAL}/rest/v1/leads/describe.json", json={"success": True, "result": [
        {"id": 9, "displayName": "Pro", "dataType": "boolean", "rest": {"name": "cohortPro", "readOnly": False}},
    ]})
    responses.post(f"{REAL}/bulk/v1/leads.json",
                   json={"success": True, "result": [{"batchId": 77, "importId": "77", "status": "Queued"}]})
    for status in ("Queued", "Importing", "Failed"):
        responses.get(f"{REAL}/bulk/v1/leads/batch/77.json", json={"success": True, "result": [
            {"batchId": 77, "status": status, "message": "Import failed: unsupported file encoding"}]})
    connector = MarketoConnector(config_for(REAL, bulk_threshold=1), sleep=fake_time.sleep, clock=fake_time.clock)

    with pytest.raises(PermanentError, match="unsupported file encoding"):
        _import(connector, [MembershipChange(f"u{i}@x.com", True) for i in range(5)], field="cohortPro")
    upload = responses.calls[2].request
    assert "format=csv" in upload.url and "lookupField=email" in upload.url
    assert upload.headers["Content-Type"].startswith("multipart/form-data")
    # Polls follow the import's age (2 s at first): a short import is noticed promptly.
    assert fake_time.sleeps == [2.0, 2.0]


def test_status_polls_back_off_with_the_imports_age_up_to_30_seconds(fake_time):
    class SlowImport:
        def __init__(self) -> None:
            self.reads = 0

        def bulk_import_status(self, *, batch_id: int) -> dict:
            self.reads += 1
            return {"status": "Complete" if fake_time.now >= 900 else "Importing"}

    client = SlowImport()
    bulk._wait_until_done(client=client, batch_id=1, sleep=fake_time.sleep, clock=fake_time.clock)

    assert fake_time.sleeps[:3] == [2.0, 2.0, 2.0]
    assert max(fake_time.sleeps) == bulk.POLL_MAX_SECONDS
    # Noticed within a twentieth of its age (at most 30 s) after it finished, in ~75 reads
    # over fifteen minutes.
    assert fake_time.now - 900 <= 30 and client.reads < 90


def test_status_polls_follow_the_time_spent_importing_not_the_time_queued(fake_time):
    class QueuedThenImporting:
        def bulk_import_status(self, *, batch_id: int) -> dict:
            if fake_time.now < 600:
                return {"status": "Queued"}
            return {"status": "Complete" if fake_time.now >= 660 else "Importing"}

    bulk._wait_until_done(client=QueuedThenImporting(), batch_id=1, sleep=fake_time.sleep, clock=fake_time.clock)

    queued = [s for s in fake_time.sleeps if s > 2.0]
    assert queued and max(queued) >= 20.0  # ten minutes in the queue: polled every ~30 s
    # Importing for a minute: polled every 2-3 s again, so the end is noticed within 3 s.
    assert fake_time.now - 660 <= 3.0


def test_csv_files_filled_row_by_row_are_cut_at_their_real_size():
    file = bulk.CsvFile(field="cohortPro", max_bytes=100)
    added = 0
    while file.add(f"user{added}@example.com", added % 2 == 0):
        added += 1
    content = file.take()

    assert len(content) <= 100 and file.rows == added
    assert len(content) + len(f"user{added}@example.com,false\r\n") > 100
    rows = list(csv.reader(io.StringIO(content.decode())))
    assert rows[0] == ["email", "cohortPro"] and rows[1] == ["user0@example.com", "true"]


def test_add_many_takes_rows_until_one_would_not_fit_and_says_how_many() -> None:
    from destinations.marketo.connector import email_refusal

    file = bulk.CsvFile(field="cohortPro", check=email_refusal, max_bytes=100)
    rows = [("a@example.com", True), ("not an email", True), ("b@example.com", False), ("c@example.com", True),
            ("d@example.com", True), ("e@example.com", True)]

    taken = file.add_many(rows)
    content = file.take()

    # Header (17 bytes) + 20 or 21 bytes a row: four rows fit (98 bytes), the fifth would
    # not; the refused address is taken too.
    assert taken == 5 and file.rows == 4 and len(content) == 98
    assert [email for email, _ in file.invalid] == ["not an email"]
    assert content.decode().splitlines()[1:] == [
        "a@example.com,true", "b@example.com,false", "c@example.com,true", "d@example.com,true"]
    big = bulk.CsvFile(field="cohortPro", max_bytes=10)
    assert big.add_many([("first-row-is-always-taken@example.com", True), ("x@example.com", True)]) == 1


def test_a_file_sends_refused_addresses_back_as_failures_instead_of_writing_them(bulk_connector, marketo):
    file = bulk_connector.new_file(target())
    for email in ("ok1@example.com", "not an email", "ok2@example.com"):
        assert file.add(email, True)

    failed = bulk_connector.push_file(target(), file)

    assert [(o.identity, o.code) for o in failed] == [("not an email", "invalid_email")]
    assert file.rows == 2


# --- The engine sending a large run as files ---------------------------------------------------


def _bulk_sync(sandbox, **options):
    from tests.factories import DestinationFactory, SyncFactory

    destination = DestinationFactory(
        marketo=True, base_url=sandbox.marketo_base_url, client_id="sandbox-client-id",
        client_secret="sandbox-client-secret", options={"bulk_threshold": 2, "max_concurrency": 3, **options},
    )
    return SyncFactory(destination=destination, target_field="cohortProUsers")


@pytest.mark.django_db
def test_a_large_run_is_sent_as_files_cut_by_size_and_records_each_user(sandbox, marketo, monkeypatch):
    from syncs.models import RunStatus, SyncedMember, SyncFailure
    from tests.syncs.fakes import pro_profile, run_now

    monkeypatch.setattr(bulk, "MAX_FILE_BYTES", 200)  # ~7 rows a file
    emails = [f"user{n:02d}@example.com" for n in range(30)]
    for email in emails:
        pro_profile(email)
    marketo.configure(reject_emails={emails[17]: {"message": "Lead is blocklisted"}})
    sync = _bulk_sync(sandbox)

    run = run_now(sync)

    assert run.status == RunStatus.PARTIAL, run.error_message
    assert (run.attempted_adds, run.succeeded_adds, run.failed_adds) == (30, 29, 1)
    failure = SyncFailure.objects.get(run=run)
    assert failure.identity_value == emails[17] and "Lead is blocklisted" in failure.message
    assert failure.profile_id is not None and failure.distinct_id
    acknowledged = set(SyncedMember.objects.filter(sync=sync, is_member=True).values_list("identity_value", flat=True))
    assert acknowledged == set(emails) - {emails[17]}
    jobs = marketo.state()["bulk_jobs"]
    assert len(jobs) >= 4 and {job["status"] for job in jobs} == {"Complete"}
    assert all(marketo.lead(e)["cohortProUsers"] is True for e in emails if e != emails[17])


@pytest.mark.django_db
def test_files_marketo_refuses_fail_their_users_and_move_no_state(sandbox, marketo, monkeypatch):
    from syncs.models import RunStatus, SyncedMember, SyncFailure
    from tests.syncs.fakes import pro_profile, run_now

    monkeypatch.setattr(bulk, "MAX_FILE_BYTES", 200)
    marketo.configure(max_bulk_bytes=100)  # every file is over the instance's limit
    for n in range(12):
        pro_profile(f"user{n:02d}@example.com")
    sync = _bulk_sync(sandbox)

    run = run_now(sync)

    assert run.status == RunStatus.FAILED
    assert (run.attempted_adds, run.succeeded_adds) == (run.failed_adds, 0) and run.failed_adds > 0
    assert SyncFailure.objects.filter(run=run).count() == run.failed_adds
    assert "at most 10 MB" in run.error_message
    assert not SyncedMember.objects.filter(sync=sync).exists()


def test_a_file_is_written_inside_its_import_request_body_and_sent_as_it_is():
    # A 10 MB file framed by requests' files= was a second copy made on the sending thread;
    # with six files in flight those copies grew the process by ~40 MiB at 10M profiles.
    from werkzeug.formparser import parse_form_data

    rows = [("a@example.com", True), ("b@example.com", False)]
    framed, plain = bulk.CsvFile(field="cohortPro"), bulk.CsvFile(field="cohortPro")
    framed.add_many(rows)
    plain.add_many(rows)
    body, csv_bytes = framed.take_body(), plain.take()

    environ = {"REQUEST_METHOD": "POST", "CONTENT_TYPE": body.content_type, "CONTENT_LENGTH": str(len(body.data)),
               "wsgi.input": io.BytesIO(body.data)}
    _, form, files = parse_form_data(environ)
    assert list(files) == ["file"] and files["file"].filename == "leads.csv"
    assert files["file"].read() == csv_bytes == b"email,cohortPro\r\na@example.com,true\r\nb@example.com,false\r\n"
    # Each file has its own boundary: an address cannot end a file by chance.
    other = bulk.CsvFile(field="cohortPro").take_body()
    assert other.content_type != body.content_type
