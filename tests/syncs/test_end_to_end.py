"""Real syncs against the SFMC and Marketo emulators over HTTP, for every destination kind.

The engine (syncs.services), the real connectors (built from destinations.registry's class
paths) and the emulators served by the `sandbox` fixture: nothing in between is faked.

One thing is changed for speed. Connectors built by connector_for() sleep with
time.sleep (the retry backoff waits out SFMC's Retry-After: 5 s, and Marketo's 606: 5 s),
so the `harness` fixture builds each connector through override_connector with the same
class and config as connector_for, plus a `sleep` that records each wait and sleeps at most
10 ms. The harness also wraps push() to record what was sent and to inject a fault after a
chosen batch (tokens expiring mid-run, the worker dying after the destination wrote).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from destinations.base import DestinationConfig, MembershipChange, PushOutcome, SyncTarget
from destinations.kinds import kind_spec
from destinations.models import Destination
from destinations.registry import connector_for, override_connector
from destinations.sandbox.server import SandboxServer
from syncs.models import RunStatus, Sync, SyncFailure, SyncRun
from syncs.services import SyncRunStateError, sync_run_request, sync_run_retry_failed
from tests.factories import DestinationFactory, SyncFactory, UserFactory
from tests.syncs.fakes import WorkerKilled, pro_profile, run_now, set_plan, synced_state

pytestmark = [pytest.mark.django_db, pytest.mark.e2e]

SANDBOX_ID = "sandbox-client-id"
SANDBOX_SECRET = "sandbox-client-secret"
DE_KEY = "CohortSync_Demo"
ATTRIBUTE_SET = "Email Demographics"


# --- What each destination kind looks like in its emulator ---------------------------------


@dataclass(frozen=True)
class Kind:
    """One destination kind: how to point it at the sandbox and read what the sandbox got."""

    kind: str
    field: str
    member: Any
    exited: Any
    missing_field: str
    # Write requests one batch of joining users takes (a static list: the leads, then the list).
    writes_per_add_batch: int = 1

    @property
    def is_marketo(self) -> bool:
        return self.kind in ("marketo", "marketo_static_list")

    def destination(self, sandbox: SandboxServer, *, secret: str = SANDBOX_SECRET, **options: Any) -> Destination:
        common = {"client_id": SANDBOX_ID, "client_secret": secret}
        if self.is_marketo:
            return DestinationFactory(marketo=True, kind=self.kind, base_url=sandbox.marketo_base_url,
                                      options={"max_concurrency": 2, **options}, **common)
        options = {"requests_per_second": 1000, "max_concurrency": 2, **options}
        if self.kind == "sfmc_contacts":
            return DestinationFactory(contacts=True, auth_base_url=sandbox.sfmc_auth_base_url,
                                      options=options, **common)
        return DestinationFactory(auth_base_url=sandbox.sfmc_auth_base_url, data_extension_key=DE_KEY,
                                  key_column="SubscriberKey", options=options, **common)

    def small_batches(self) -> dict[str, Any]:
        """Destination options for two users per push, one push at a time."""
        size = "batch_size" if self.is_marketo else "rowset_batch_size"
        return {size: 2, "max_concurrency": 1}

    def written(self, sandbox: SandboxServer) -> dict[str, Any]:
        """identity -> the value the emulator holds in this kind's field."""
        if self.kind == "marketo_static_list":
            # Every lead the emulator has: whether it is in the list.
            members = sandbox.sandboxes.marketo.list_members(self.field)
            return {lead["email"]: lead["email"].lower() in members
                    for lead in sandbox.sandboxes.marketo.state()["leads"]}
        if self.kind == "marketo":
            leads = sandbox.sandboxes.marketo.state()["leads"]
            return {lead["email"]: lead[self.field] for lead in leads if self.field in lead}
        sfmc = sandbox.sandboxes.sfmc
        if self.kind == "sfmc_contacts":
            contacts = sfmc.state()["contacts"]
            return {key: sets[ATTRIBUTE_SET][self.field] for key, sets in contacts.items()
                    if self.field in sets.get(ATTRIBUTE_SET, {})}
        return {row["SubscriberKey"]: row[self.field] for row in sfmc.rows(DE_KEY) if self.field in row}

    def writes(self, sandbox: SandboxServer) -> int:
        """Write requests the emulator has received (reads for validation do not count)."""
        if self.is_marketo:
            calls = sandbox.sandboxes.marketo.state()["calls"]["by_endpoint"]
            labels = ("POST /rest/v1/leads.json", "POST /bulk/v1/leads.json",
                      "POST /rest/v1/lists/{id}/leads.json", "DELETE /rest/v1/lists/{id}/leads.json")
            return sum(calls.get(label, 0) for label in labels)
        calls = sandbox.sandboxes.sfmc.state()["calls"]["by_endpoint"]
        labels = ("PATCH /contacts/v1/contacts",) if self.kind == "sfmc_contacts" else (
            "POST /hub/v1/dataevents/{key}/rowset", "PUT /data/v1/async/dataextensions/{key}/rows")
        return sum(calls.get(label, 0) for label in labels)

    def reject(self, sandbox: SandboxServer, identity: str, message: str) -> None:
        if self.is_marketo:
            sandbox.sandboxes.marketo.configure(reject_emails={identity: {"code": "1003", "message": message}})
        else:
            sandbox.sandboxes.sfmc.configure(reject_identities={identity: message})

    def clear_rejections(self, sandbox: SandboxServer) -> None:
        if self.is_marketo:
            sandbox.sandboxes.marketo.configure(reject_emails={})
        else:
            sandbox.sandboxes.sfmc.configure(reject_identities={})

    def inject_transient_faults(self, sandbox: SandboxServer) -> None:
        """A server error and throttling on the next requests (the client must absorb them)."""
        if self.is_marketo:
            # The static list kind reads lists.json where the field kind reads describe.
            validation = "lists.json" if self.kind == "marketo_static_list" else "describe"
            sandbox.sandboxes.marketo.configure(inject=[
                {"code": "502", "times": 1, "path": "leads.json"},
                {"code": "606", "times": 1, "path": "leads.json"},
                {"code": "604", "times": 1, "path": validation},
            ])
        else:
            sandbox.sandboxes.sfmc.configure(fail_next=2, throttle_next=1)

    def expire_tokens(self, sandbox: SandboxServer) -> None:
        emulator = sandbox.sandboxes.marketo if self.is_marketo else sandbox.sandboxes.sfmc
        emulator.configure(expire_tokens=True)

    def tokens_issued(self, sandbox: SandboxServer) -> int:
        emulator = sandbox.sandboxes.marketo if self.is_marketo else sandbox.sandboxes.sfmc
        return emulator.state()["calls"]["tokens_issued"]


KINDS = [
    Kind("sfmc_data_extension", field="Pro_Users_E2E", member=True, exited=False,
         missing_field="Not_A_Column"),
    Kind("sfmc_contacts", field="Cohort_Demo", member="realized", exited="exited",
         missing_field="Not_An_Attribute"),
    Kind("marketo", field="cohortProUsers", member=True, exited=False,
         missing_field="cohortDoesNotExist"),
    # A static list: members are in it (True), leavers are leads out of it (False).
    Kind("marketo_static_list", field="Pro users", member=True, exited=False,
         missing_field="Pro Users", writes_per_add_batch=2),  # names match exactly, capitals included
]


@pytest.fixture(params=KINDS, ids=lambda k: str(k.kind))
def kind(request: pytest.FixtureRequest) -> Kind:
    return request.param


# --- The harness: real connectors, fast sleeps, a record of what was pushed ----------------


class Harness:
    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.pushes: list[list[MembershipChange]] = []
        # Called with the push number (1-based) after the destination answered that push.
        self.after_push: Callable[[int], None] | None = None
        self._lock = threading.Lock()

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        time.sleep(min(seconds, 0.01))

    def build(self, config: DestinationConfig) -> Any:
        connector = kind_spec(config.kind).connector_class()(config, sleep=self.sleep)
        real_push = connector.push

        def push(target: SyncTarget, changes: list[MembershipChange]) -> list[PushOutcome]:
            outcomes = real_push(target, changes)
            with self._lock:
                self.pushes.append(list(changes))
                number = len(self.pushes)
            if self.after_push is not None:
                self.after_push(number)
            return outcomes

        connector.push = push
        return connector

    def sent(self) -> list[tuple[str, bool]]:
        return [(c.identity, c.is_member) for batch in self.pushes for c in batch]

    def forget(self) -> None:
        self.pushes.clear()
        self.sleeps.clear()


@pytest.fixture
def harness() -> Iterator[Harness]:
    cache.clear()  # access tokens live in the process-wide cache; start without one
    harness = Harness()
    with override_connector(harness.build):
        yield harness


def _sync(kind: Kind, destination: Destination, **fields: Any) -> Sync:
    return SyncFactory(destination=destination, target_field=fields.pop("target_field", kind.field), **fields)


def _emails(count: int, prefix: str = "user") -> list[str]:
    return [f"{prefix}{n}@example.com" for n in range(count)]


# --- The life of a sync --------------------------------------------------------------------


def test_first_run_no_change_join_leave_rejection_and_retry(kind: Kind, sandbox, harness) -> None:
    a, b, c, d, e = _emails(5)
    profiles = {email: pro_profile(email) for email in (a, b, c, d)}
    profiles[e] = pro_profile(e, plan="free")
    kind.reject(sandbox, c, "The address is on the suppression list.")
    sync = _sync(kind, kind.destination(sandbox))

    first = run_now(sync)

    assert first.status == RunStatus.PARTIAL, first.error_message
    assert (first.planned_adds, first.succeeded_adds, first.failed_adds) == (4, 3, 1)
    assert kind.written(sandbox) == {a: kind.member, b: kind.member, d: kind.member}
    failure = SyncFailure.objects.get(run=first)
    assert (failure.identity_value, failure.operation) == (c, SyncFailure.Operation.ADD)
    assert failure.distinct_id == profiles[c].distinct_id
    assert "The address is on the suppression list." in failure.message
    assert synced_state(sync) == {a: True, b: True, d: True}

    # The refusal is permanent: the default retry (retriable failures only) has nothing to
    # send. Once the cause is fixed, "Retry all failed users" sends that user and nobody else.
    with pytest.raises(SyncRunStateError, match="no retriable failures"):
        sync_run_retry_failed(run=first, requested_by=UserFactory())
    kind.clear_rejections(sandbox)
    harness.forget()
    writes_before = kind.writes(sandbox)
    retry = sync_run_retry_failed(run=first, requested_by=UserFactory(), non_retriable=True)
    retry = _execute(retry)

    assert retry.status == RunStatus.SUCCEEDED, retry.error_message
    assert (retry.trigger, retry.retry_of_id) == (SyncRun.Trigger.RETRY, first.pk)
    assert harness.sent() == [(c, True)]
    assert kind.writes(sandbox) == writes_before + kind.writes_per_add_batch
    assert kind.written(sandbox)[c] == kind.member
    assert synced_state(sync) == {a: True, b: True, c: True, d: True}

    # Nothing changed: the run only reads what validation needs and writes nothing.
    writes_before = kind.writes(sandbox)
    harness.forget()
    quiet = run_now(sync)

    assert quiet.status == RunStatus.SUCCEEDED
    assert harness.pushes == []
    assert (quiet.planned_adds, quiet.planned_removes, quiet.attempted_adds) == (0, 0, 0)
    assert kind.writes(sandbox) == writes_before
    assert quiet.api_calls > 0  # the target was still validated

    # e joins, a leaves.
    set_plan(profiles[e], "pro")
    set_plan(profiles[a], "free")
    harness.forget()
    change = run_now(sync)

    assert change.status == RunStatus.SUCCEEDED, change.error_message
    assert (change.succeeded_adds, change.succeeded_removes) == (1, 1)
    assert sorted(harness.sent()) == [(a, False), (e, True)]
    written = kind.written(sandbox)
    assert (written[a], written[e]) == (kind.exited, kind.member)
    assert synced_state(sync) == {a: False, b: True, c: True, d: True, e: True}


def _execute(run: SyncRun) -> SyncRun:
    """What the task does once the request's transaction commits."""
    from syncs.services import sync_run_execute

    return sync_run_execute(run_id=run.pk)


# --- Faults the client absorbs -------------------------------------------------------------


def test_server_errors_throttling_and_a_token_expiring_mid_run_are_retried(kind: Kind, sandbox, harness) -> None:
    emails = _emails(6)
    for email in emails:
        pro_profile(email)
    sync = _sync(kind, kind.destination(sandbox, **kind.small_batches()))
    kind.inject_transient_faults(sandbox)
    tokens_before = kind.tokens_issued(sandbox)

    def expire_after_first_batch(number: int) -> None:
        if number == 1:
            kind.expire_tokens(sandbox)

    harness.after_push = expire_after_first_batch
    run = run_now(sync)

    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert (run.succeeded_adds, run.failed_adds) == (6, 0)
    assert not SyncFailure.objects.filter(run=run).exists()
    assert kind.written(sandbox) == dict.fromkeys(emails, kind.member)
    assert harness.sleeps, "the faults were retried after a backoff"
    # One token at the start, a fresh one after the emulator expired it mid-run.
    assert kind.tokens_issued(sandbox) - tokens_before == 2


def test_a_run_killed_mid_push_is_failed_and_the_next_run_resumes(kind: Kind, sandbox, harness) -> None:
    emails = _emails(6)
    for email in emails:
        pro_profile(email)
    sync = _sync(kind, kind.destination(sandbox, **kind.small_batches()))

    def die_after_second_batch(number: int) -> None:
        # The destination wrote batch 2, but the worker died before recording it. The pause
        # lets the main thread record batch 1 first, as it usually has by then; batches run
        # in threads, so under load it may not have, and the assertions hold either way.
        if number == 2:
            time.sleep(0.3)
            raise WorkerKilled

    harness.after_push = die_after_second_batch
    killed = sync_run_request(sync=sync, trigger=SyncRun.Trigger.SCHEDULE)
    with pytest.raises(WorkerKilled):
        _execute(killed)
    harness.after_push = None
    killed.refresh_from_db()
    unrecorded_batch = {identity for identity, _ in harness.sent()[2:4]}
    acknowledged = synced_state(sync)
    assert killed.status == RunStatus.RUNNING
    assert set(acknowledged.values()) <= {True}
    assert not unrecorded_batch & set(acknowledged)
    # Ten minutes without a heartbeat: the worker is gone.
    SyncRun.objects.filter(pk=killed.pk).update(heartbeat_at=timezone.now() - dt.timedelta(minutes=11))
    harness.forget()

    resumed = _execute(sync_run_request(sync=sync, trigger=SyncRun.Trigger.MANUAL))

    killed.refresh_from_db()
    assert (killed.status, killed.error_code) == (RunStatus.FAILED, "worker_lost")
    assert resumed.status == RunStatus.SUCCEEDED, resumed.error_message
    sent = [identity for identity, _ in harness.sent()]
    # Nothing acknowledged is sent again; everything else (batch 2 included) is.
    assert sorted(sent) == sorted(set(emails) - set(acknowledged))
    assert synced_state(sync) == dict.fromkeys(emails, True)
    assert kind.written(sandbox) == dict.fromkeys(emails, kind.member)


# --- Users and settings the destination cannot take ----------------------------------------


def test_members_without_the_identity_are_skipped_and_listed(kind: Kind, sandbox, harness, admin_client) -> None:
    pro_profile("kept@example.com")
    nameless = pro_profile(None)
    sync = _sync(kind, kind.destination(sandbox))

    run = run_now(sync)

    assert run.status == RunStatus.SUCCEEDED, run.error_message
    assert (run.skipped_users, run.succeeded_adds) == (1, 1)
    assert kind.written(sandbox) == {"kept@example.com": kind.member}
    skipped = SyncFailure.objects.get(run=run)
    assert (skipped.operation, skipped.code, skipped.distinct_id) == (
        SyncFailure.Operation.SKIP, "missing_identity", nameless.distinct_id)
    assert "'$email'" in skipped.message
    page = admin_client.get(reverse("admin:syncs_syncrun_change", args=[run.pk])).content.decode()
    assert nameless.distinct_id in page


def test_a_missing_destination_field_fails_the_run_and_sends_nothing(kind: Kind, sandbox, harness) -> None:
    for email in _emails(3):
        pro_profile(email)
    sync = _sync(kind, kind.destination(sandbox), target_field=kind.missing_field,
                 options={"create_missing_field": False} if kind.kind == "sfmc_data_extension" else {})

    run = run_now(sync)

    assert run.status == RunStatus.FAILED
    assert kind.missing_field in run.error_message and "Nothing was sent." in run.error_message
    assert kind.writes(sandbox) == 0 and harness.pushes == []
    assert not synced_state(sync)
    if kind.kind == "sfmc_data_extension":
        columns = [f["name"] for f in sandbox.sandboxes.sfmc.state()["data_extensions"][DE_KEY]["fields"]]
        assert kind.missing_field not in columns


def test_bad_credentials_fail_the_run_clearly_without_the_secret(kind: Kind, sandbox, harness) -> None:
    for email in _emails(2):
        pro_profile(email)
    secret = "wrong-secret-e2e-4242"
    sync = _sync(kind, kind.destination(sandbox, secret=secret))

    run = run_now(sync)

    assert run.status == RunStatus.FAILED
    assert "client id" in run.error_message.lower() or "credentials" in run.error_message.lower()
    assert "Nothing was sent." in run.error_message
    assert secret not in run.error_message and secret not in run.error_code
    assert kind.writes(sandbox) == 0 and not synced_state(sync)


# --- Shared rate budgets -------------------------------------------------------------------


def test_connectors_for_one_marketo_instance_share_its_budget(sandbox) -> None:
    kind = KINDS[2]
    first, second = kind.destination(sandbox), kind.destination(sandbox)
    other_service = DestinationFactory(marketo=True, base_url=sandbox.marketo_base_url, client_id="other-id",
                                       client_secret=SANDBOX_SECRET)

    budget = connector_for(first).client.budget

    # Marketo's limits are the instance's, shared by every integration: two syncs to it (even
    # through two destinations, or another API service) draw on one budget, held by the
    # configured store (memory in tests, Redis or the database in production).
    assert budget.key == f"marketo:127.0.0.1:{sandbox.port}"
    for destination in (second, first, other_service):
        shared = connector_for(destination).client.budget
        assert (shared.key, shared.store) == (budget.key, budget.store)


# --- The large-run paths, guards and controls ----------------------------------------------


def _large_run_options(kind: Kind) -> dict[str, Any]:
    """Options that send a 6-user run the way a large run is sent (async upsert, bulk import)."""
    if kind.kind == "sfmc_data_extension":
        return {"async_threshold": 2}
    if kind.is_marketo:
        return {"bulk_threshold": 2}
    return {}


def test_large_run_paths_report_rejections_per_user_and_retry_them(kind: Kind, sandbox, harness) -> None:
    emails = _emails(6)
    for email in emails:
        pro_profile(email)
    kind.reject(sandbox, emails[3], "Subscriber is on a blocklist.")
    if kind.kind == "sfmc_data_extension":
        # SFMC asks for deadlocked async rows to be sent again; the connector does, once.
        sandbox.sandboxes.sfmc.configure(deadlock_identities=[emails[1]])
    sync = _sync(kind, kind.destination(sandbox, **_large_run_options(kind)))

    first = run_now(sync)

    assert first.status == RunStatus.PARTIAL, first.error_message
    assert (first.succeeded_adds, first.failed_adds) == (5, 1)
    failure = SyncFailure.objects.get(run=first)
    assert failure.identity_value == emails[3] and "Subscriber is on a blocklist." in failure.message
    assert kind.written(sandbox) == {e: kind.member for e in emails if e != emails[3]}
    if kind.kind == "sfmc_data_extension":
        assert sandbox.sandboxes.sfmc.config["deadlock_identities"] == []  # it did deadlock

    kind.clear_rejections(sandbox)
    harness.forget()
    retry = _execute(sync_run_retry_failed(run=first, requested_by=UserFactory(), non_retriable=True))

    assert retry.status == RunStatus.SUCCEEDED, retry.error_message
    assert harness.sent() == [(emails[3], True)]
    assert kind.written(sandbox) == dict.fromkeys(emails, kind.member)


def test_a_mass_removal_waits_for_approval_then_sends(kind: Kind, sandbox, harness) -> None:
    from syncs.services import sync_run_approve

    profiles = [pro_profile(email) for email in _emails(4)]
    sync = _sync(kind, kind.destination(sandbox))
    assert run_now(sync).status == RunStatus.SUCCEEDED
    for profile in profiles[:3]:
        set_plan(profile, "free")
    writes_before = kind.writes(sandbox)

    held = run_now(sync)

    assert held.status == RunStatus.AWAITING_APPROVAL
    assert held.planned_removes == 3 and kind.writes(sandbox) == writes_before
    approved = _execute(sync_run_approve(run=held, approved_by=UserFactory()))

    assert approved.status == RunStatus.SUCCEEDED, approved.error_message
    assert approved.succeeded_removes == 3
    written = kind.written(sandbox)
    assert [written[p.properties["$email"]] for p in profiles] == [kind.exited] * 3 + [kind.member]


def test_a_cancelled_run_stops_after_the_batch_in_flight_and_the_next_run_sends_the_rest(
    kind: Kind, sandbox, harness, monkeypatch
) -> None:
    from syncs.engine import runner
    from syncs.services import sync_run_cancel

    emails = _emails(6)
    for email in emails:
        pro_profile(email)
    sync = _sync(kind, kind.destination(sandbox, **kind.small_batches()))
    run = sync_run_request(sync=sync, trigger=SyncRun.Trigger.MANUAL)
    canceller = UserFactory()
    pushed_once = threading.Event()
    harness.after_push = lambda number: pushed_once.set()
    real_check = runner._cancel_requested

    def cancel_once_a_batch_was_sent(checked: SyncRun) -> bool:
        # Staff press "Cancel" while the first batch is out. Done from the engine's own thread:
        # the test database connection cannot be shared with the push threads.
        if pushed_once.is_set() and checked.cancel_requested_at is None:
            checked.cancel_requested_at = sync_run_cancel(run=run, requested_by=canceller).cancel_requested_at
        return real_check(checked)

    monkeypatch.setattr(runner, "_cancel_requested", cancel_once_a_batch_was_sent)
    cancelled = _execute(run)
    monkeypatch.undo()

    assert cancelled.status == RunStatus.CANCELLED
    # The batch being sent when the cancel was noticed, and the queued one if a thread had
    # already taken it; never the third.
    assert cancelled.succeeded_adds in (2, 4) and len(synced_state(sync)) == cancelled.succeeded_adds
    assert str(canceller) in cancelled.error_message
    nxt = run_now(sync)
    assert nxt.status == RunStatus.SUCCEEDED and nxt.succeeded_adds == 6 - cancelled.succeeded_adds
    assert kind.written(sandbox) == dict.fromkeys(emails, kind.member)


def test_full_resync_and_one_time_exports(kind: Kind, sandbox, harness) -> None:
    profiles = [pro_profile(email) for email in _emails(3)]
    dynamic = _sync(kind, kind.destination(sandbox))
    assert run_now(dynamic).status == RunStatus.SUCCEEDED
    harness.forget()

    full = run_now(dynamic, full_resync=True)

    assert full.status == RunStatus.SUCCEEDED and full.succeeded_adds == 3
    assert sorted(harness.sent()) == sorted((p.properties["$email"], True) for p in profiles)

    # A one-time export sends today's members and never clears anyone it wrote before.
    other_field = {"sfmc_data_extension": "Once_E2E", "sfmc_contacts": "Last Name",
                   "marketo": "cohortStaticVip", "marketo_static_list": "VIP customers"}[kind.kind]
    once = _sync(kind, dynamic.destination, target_field=other_field, mode=Sync.Mode.ONE_TIME)
    assert run_now(once).succeeded_adds == 3
    set_plan(profiles[0], "free")
    again = run_now(once)
    assert again.status == RunStatus.SUCCEEDED and (again.planned_adds, again.planned_removes) == (0, 0)


def test_a_dry_run_plans_without_touching_the_destination(kind: Kind, sandbox, harness) -> None:
    for email in _emails(3):
        pro_profile(email)
    sync = _sync(kind, kind.destination(sandbox))

    dry = run_now(sync, dry_run=True)

    assert dry.status == RunStatus.SUCCEEDED and dry.planned_adds == 3
    assert kind.writes(sandbox) == 0 and harness.pushes == [] and not synced_state(sync)
    assert [a["identity"] for a in dry.plan_sample["adds"]] == _emails(3)
