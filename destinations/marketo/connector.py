"""The Marketo connectors: what the Marketo kinds share (MarketoInstanceConnector), and the
`marketo` kind's MarketoConnector (a cohort is one Boolean custom lead field, set true/false
by email)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from destinations.base import (
    ConnectionReport,
    Connector,
    DestinationConfig,
    FieldInfo,
    MembershipChange,
    PlainIdentity,
    PushOutcome,
    SendPlan,
    SyncTarget,
    TargetCheck,
    TargetStatus,
    UnitKind,
    target_checks,
)
from destinations.errors import UNEXPECTED_RESPONSE, InvalidIdentityError, TargetValidationError
from destinations.marketo import bulk, messages
from destinations.marketo.client import MarketoClient
from destinations.marketo.settings import MarketoOptions

MAX_SYNC_BATCH = 300
# Marketo imports two files at once per instance and queues ten, and a file waits at least
# one step queued before it imports. Two importing plus four queued behind them keep both
# import slots busy: the pair after next is already through its queued step when the next
# pair finishes. With only two queued, each pair was submitted when the one before it was
# noticed and recorded, so every pair started importing that much late (10M profiles, 40
# files: 464 s for a 420 s schedule). Four queue places are left to other integrations.
MAX_PARALLEL_IMPORTS = 6
MAX_EMAIL_LENGTH = 254
INVALID_EMAIL = "invalid_email"

_DOMAIN_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
# Characters that mean a pasted display name or a list ("Ann <ann@x.com>", "a@x.com; b@y.com").
_FORBIDDEN_IN_EMAIL = set(" \t\r\n<>()[],;:\\\"")
# The common, plainly valid address in one regex match. It accepts a strict subset of what
# the checks in email_problem accept (printable ASCII only, dots between non-empty parts,
# the same domain labels), so using it first never changes a verdict; it only skips the
# step-by-step checks that name a problem. A million-member plan checks every address.
_PLAINLY_VALID_EMAIL = re.compile(
    r"[!#-'*+\-/-9=?A-Z^-~]+(?:\.[!#-'*+\-/-9=?A-Z^-~]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
)

# The addresses normalize_identity returns unchanged, for PostgreSQL: _PLAINLY_VALID_EMAIL
# without upper case (lower() would change it) and anchored. The engine takes such values
# as they are in the database; everything else goes through normalize_identity.
PLAIN_EMAIL = PlainIdentity(
    pattern=(
        r"^[!#-'*+/-9=?^-~-]+(?:\.[!#-'*+/-9=?^-~-]+)*"
        r"@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$"
    ),
    max_length=MAX_EMAIL_LENGTH,
)


def email_problem(email: str) -> str:
    """Why `email` (already trimmed and lower-cased) cannot go to Marketo, or ""."""
    if len(email) <= MAX_EMAIL_LENGTH and _PLAINLY_VALID_EMAIL.fullmatch(email):
        return ""
    if not email:
        return "the email address is empty"
    if not email.isascii():
        return "Marketo accepts only ASCII email addresses and this one has other characters"
    if len(email) > MAX_EMAIL_LENGTH:
        return f"the email address is longer than {MAX_EMAIL_LENGTH} characters"
    if any(char in _FORBIDDEN_IN_EMAIL for char in email):
        return "the email address contains spaces or characters such as <>,;: that addresses cannot have"
    local, at, domain = email.rpartition("@")
    if not at or not local or "@" in local:
        return "the value is not an email address (it needs exactly one @)"
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return "the part before the @ has misplaced dots"
    labels = domain.split(".")
    if len(labels) < 2 or not all(_DOMAIN_LABEL_RE.match(label) for label in labels):
        return f"'{domain}' is not a valid email domain"
    return ""


def email_refusal(email: str) -> str:
    """Why a (lower-cased) email is not sent, as a user's failure message, or ""."""
    problem = email_problem(email)
    return f"Not sent to Marketo: {problem}." if problem else ""


class MarketoInstanceConnector(Connector):
    """What the Marketo kinds share: a client for one instance, emails as identities, and
    how a run is sent (the sync endpoint, or bulk import above bulk_threshold)."""

    plain_identity = PLAIN_EMAIL

    def __init__(
        self,
        config: DestinationConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.options = MarketoOptions.of(config.options)
        self._sync_batch = min(MAX_SYNC_BATCH, self.options.batch_size)
        self._sleep = sleep
        self._clock = clock
        self.client = MarketoClient(
            base_url=config.setting("base_url"),
            client_id=config.client_id,
            client_secret=config.client_secret,
            calls_per_20s=self.options.calls_per_20s,
            max_concurrency=self.options.max_concurrency,
            daily_call_quota=self.options.daily_call_quota,
            sleep=sleep,
            clock=clock,
        )

    @property
    def api_calls(self) -> int:
        return self.client.api_calls

    def normalize_identity(self, raw_value: Any) -> str:
        email = "" if raw_value is None else str(raw_value).strip().lower()
        problem = email_problem(email)
        if problem:
            raise InvalidIdentityError(f"Not sent to Marketo: {problem}.", code=INVALID_EMAIL)
        return email

    def send_plan(self, total_changes: int) -> SendPlan:
        """The sync endpoint (batch_size leads per call) up to bulk_threshold changes; above
        it, bulk import files, of which only MAX_PARALLEL_IMPORTS make progress at once
        (more in flight would only hold whole files of users in memory while they wait)."""
        if total_changes > self.options.bulk_threshold:
            return SendPlan(
                UnitKind.FILES,
                batch_size=bulk.rows_per_file(),
                concurrency=min(self.options.max_concurrency, MAX_PARALLEL_IMPORTS),
            )
        return SendPlan(UnitKind.BATCHES, batch_size=self._sync_batch, concurrency=self.options.max_concurrency)

    def instance_logged_in(self) -> str:
        """Log in (a token), and say where: "Marketo at 123-ABC-456.mktorest.com as api@x"."""
        scope = self.client.access_token().extra.get("scope") or ""
        who = f" as {scope}" if scope else ""
        return f"Marketo at {urlsplit(self.client.base_url).netloc}{who}"

    def _import(self, content: bytes | bulk.ImportBody, *, list_id: int | None = None) -> list[PushOutcome]:
        """Import one CSV file; outcomes for the rows Marketo refused (the rest imported)."""
        refused = bulk.bulk_import_file(
            client=self.client, content=content, list_id=list_id, sleep=self._sleep, clock=self._clock
        )
        return [
            PushOutcome(email, ok=False, code=row.code, message=row.message, retriable=row.retriable)
            for email, row in refused.items()
        ]


class MarketoConnector(MarketoInstanceConnector):
    """The `marketo` kind: one Boolean custom lead field per cohort.

    Members get true, leavers false; leads missing in Marketo are created (createOrUpdate
    with lookupField=email). Small runs use the sync endpoint (300 leads per call); runs
    above options.bulk_threshold go through bulk import, which is what keeps a
    30M-profile cohort within Marketo's daily API quota.
    """

    def __init__(
        self,
        config: DestinationConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(config, sleep=sleep, clock=clock)
        self._rest_names: dict[str, str] = {}
        self._lock = threading.Lock()
        self._resolve_lock = threading.Lock()

    # --- connection and fields ----------------------------------------------------------

    def check_connection(self) -> ConnectionReport:
        instance = self.instance_logged_in()
        fields = self.list_target_fields()
        usable = sum(1 for f in fields if f.is_target_compatible)
        return ConnectionReport(
            ok=True,
            summary=(
                f"{instance}: {len(fields)} lead fields, {usable} of them writable Boolean fields "
                "usable for cohorts."
            ),
            fields=fields,
        )

    def list_target_fields(self) -> list[FieldInfo]:
        fields = []
        for item in self.client.describe_leads():
            rest = item.get("rest")
            if not isinstance(rest, dict) or not rest.get("name"):
                continue  # not exposed to the REST API
            data_type = str(item.get("dataType") or "")
            fields.append(
                FieldInfo(
                    name=str(rest["name"]),
                    label=str(item.get("displayName") or rest["name"]),
                    type=data_type,
                    is_target_compatible=data_type == "boolean" and not rest.get("readOnly", False),
                )
            )
        return fields

    def validate_target(self, target: SyncTarget) -> str:
        """Check the field is a writable Boolean; returns (and remembers) its REST name."""
        match = _usable_field((target.field or "").strip(), self.list_target_fields())
        with self._lock:
            self._rest_names[target.field] = match.name
        return match.name

    def check_targets(self, targets: Sequence[SyncTarget]) -> list[TargetCheck]:
        fields = self.list_target_fields()

        def describe(target: SyncTarget) -> TargetCheck:
            match = _usable_field((target.field or "").strip(), fields)
            return TargetCheck(TargetStatus.EXISTS, f"Marketo field {_shown(match)}: a writable Boolean field.")

        return target_checks(targets, describe)

    def _rest_field(self, target: SyncTarget) -> str:
        # Parallel first pushes would each read describe; one reads it, the others wait.
        with self._resolve_lock:
            with self._lock:
                known = self._rest_names.get(target.field)
            return known or self.validate_target(target)

    # --- batches: the sync endpoint ---------------------------------------------------------

    def push(self, target: SyncTarget, changes: Sequence[MembershipChange]) -> list[PushOutcome]:
        if not changes:
            return []
        field = self._rest_field(target)
        members, invalid = emails_grouped(changes)
        results = self._push_sync(field, list(members.items()))
        return outcomes_by_change(changes, members, invalid, results, stays=(
            "Left the cohort, but another member has the same email, so the lead stays true."))

    def _push_sync(self, field: str, records: list[tuple[str, bool]]) -> dict[str, PushOutcome]:
        outcomes: dict[str, PushOutcome] = {}
        for start in range(0, len(records), self._sync_batch):
            chunk = records[start : start + self._sync_batch]
            # One result per lead, in input order (the client checked the count).
            results = self.client.sync_leads(
                records=[{"email": email, field: value} for email, value in chunk]
            )
            for (email, _), result in zip(chunk, results, strict=True):
                outcomes[email] = _record_outcome(email, result, field)
        return outcomes

    # --- files: bulk import, filled by the engine -------------------------------------------

    def new_file(self, target: SyncTarget) -> bulk.CsvFile:
        """An empty import file: the engine adds the run's changes to it until it is full,
        then hands it to push_file. Nothing per user is kept but the CSV bytes."""
        return bulk.CsvFile(field=self._rest_field(target), check=email_refusal)

    def push_file(self, target: SyncTarget, file: bulk.CsvFile) -> list[PushOutcome]:  # type: ignore[override]
        """Import one file; returns outcomes only for the users that failed (every other
        row of the file was acknowledged)."""
        failed = [
            PushOutcome(email, ok=False, code=INVALID_EMAIL, message=message)
            for email, message in file.invalid
        ]
        if file.rows:
            failed += self._import(file.take_body())
        return failed


def emails_grouped(changes: Sequence[MembershipChange]) -> tuple[dict[str, bool], dict[int, str]]:
    """A batch by email: email -> whether it is a member, and change index -> why its email
    is not sent. One entry per email: Marketo's behaviour for an email twice in one call is
    undocumented, and two upserts racing on one email can create duplicate leads. Two users
    sharing an email share one lead, so a member among them wins."""
    members: dict[str, bool] = {}
    invalid: dict[int, str] = {}
    for index, change in enumerate(changes):
        email = str(change.identity or "").strip().lower()
        refusal = email_refusal(email)
        if refusal:
            invalid[index] = refusal
            continue
        members[email] = members.get(email, False) or change.is_member
    return members, invalid


def outcomes_by_change(
    changes: Sequence[MembershipChange],
    members: Mapping[str, bool],
    invalid: Mapping[int, str],
    results: Mapping[str, PushOutcome],
    *,
    stays: str,
) -> list[PushOutcome]:
    """One outcome per change, from the results by email (emails_grouped); a leaver whose
    email a member shares is told so (`stays`)."""
    outcomes = []
    for index, change in enumerate(changes):
        if index in invalid:
            outcomes.append(PushOutcome(change.identity, ok=False, code=INVALID_EMAIL, message=invalid[index]))
            continue
        email = str(change.identity).strip().lower()
        row = results[email]
        message = stays if row.ok and members[email] and not change.is_member else row.message
        outcomes.append(PushOutcome(change.identity, ok=row.ok, code=row.code, message=message,
                                    retriable=row.retriable, remote_id=row.remote_id))
    return outcomes


def _record_outcome(email: str, result: Mapping[str, Any], field: str) -> PushOutcome:
    """One lead's result (its reasons scrubbed by the client)."""
    status = result.get("status")
    if status in ("created", "updated"):
        return PushOutcome(email, ok=True)
    if status != "skipped":
        return PushOutcome(
            email, ok=False, code=UNEXPECTED_RESPONSE, retriable=True,
            message="Marketo's answer to the lead sync had no documented status (created, "
            "updated or skipped) for this lead, so it is not acknowledged; it is sent again by "
            "the next run.",
        )
    first = result["reasons"][0] if result.get("reasons") else {}
    code, marketo_message = first.get("code", ""), first.get("message", "")
    if code == "1006" and field.lower() in marketo_message.lower():
        # The cohort field itself is gone: that stops the run, not just this user.
        raise TargetValidationError(
            f"Marketo no longer has the lead field '{field}' (1006). Re-create it as a Boolean "
            "custom field in Admin > Field Management, or point the sync at another field.",
            code=code,
        )
    return PushOutcome(email, ok=False, code=code, message=messages.record_message(code, marketo_message),
                       retriable=messages.record_is_retriable(code))


def _usable_field(wanted: str, fields: list[FieldInfo]) -> FieldInfo:
    """The writable Boolean field called `wanted`, or TargetValidationError saying why not."""
    match = _find_field(wanted, fields)
    how_to = (
        f"Create a Boolean custom field named '{wanted}' in Marketo Admin > Field Management "
        "(or pick an existing one), then use its API name here."
    )
    if match is None:
        raise TargetValidationError(
            f"Marketo has no lead field '{wanted}'. {how_to}", code="field_not_found"
        )
    if isinstance(match, list):
        names = ", ".join(sorted(f.name for f in match))
        raise TargetValidationError(
            f"Several Marketo fields are called '{wanted}' ({names}): use the API name of the "
            "one this sync should write.",
            code="field_ambiguous",
        )
    if match.type != "boolean":
        raise TargetValidationError(
            f"The Marketo field {_shown(match)} is of type '{match.type}', not Boolean: a cohort "
            "field must be Boolean so members get true and leavers false. Create a Boolean "
            "custom field in Admin > Field Management and use that one.",
            code="field_wrong_type",
        )
    if not match.is_target_compatible:
        raise TargetValidationError(
            f"The Marketo field {_shown(match)} is read-only for the API (a system or CRM-managed "
            "field), so CohortSync cannot write it. Use a Boolean custom field you created.",
            code="field_read_only",
        )
    return match


def _shown(field: FieldInfo) -> str:
    return field.name if field.label == field.name else f"{field.label} (API name {field.name})"


def _find_field(wanted: str, fields: list[FieldInfo]) -> FieldInfo | list[FieldInfo] | None:
    """By REST name, then REST name ignoring case, then display name ignoring case."""
    for candidates in (
        [f for f in fields if f.name == wanted],
        [f for f in fields if f.name.lower() == wanted.lower()],
        [f for f in fields if f.label.strip().lower() == wanted.lower()],
    ):
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            return candidates
    return None
