"""SFMC data extension connector (kind sfmc_data_extension).

One data extension holds one row per user, keyed by the key column (SubscriberKey by
default, "Contact Key" in Amplitude-style setups), with one Boolean column per cohort:
joining writes true, leaving writes false, and rows are never deleted.

Small runs use the synchronous rowset endpoint (at most 50 rows per call, SFMC's best
practice); larger runs use the async upsert (up to 32,000 rows per request) and poll for
its per-row results. Column names are compared case-insensitively, as SFMC does. Columns
named in property_mapping are used exactly as given: choosing Title Case names like
Segment's is the admin's job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.conf import settings

from destinations.base import (
    ConnectionReport,
    Connector,
    DestinationConfig,
    FieldInfo,
    MembershipChange,
    PushOutcome,
    SendPlan,
    SyncTarget,
    TargetCheck,
    TargetStatus,
    UnitKind,
    target_checks,
)
from destinations.errors import ConfigurationError, PermanentError, TargetValidationError
from destinations.http import RetryPolicy, TokenCache
from destinations.sfmc.client import SfmcClient
from destinations.sfmc.common import (
    PLAIN_KEY,
    chunks_by_size,
    contact_key_normalize,
    mapped_values,
    outcomes_failed,
    outcomes_ok,
)
from destinations.sfmc_data_extension.spec import (
    DEFAULT_KEY_COLUMN,
    ROWSET_MAX_BATCH,
    DataExtensionOptions,
)

# Below this many rows a rejected rowset is retried row by row instead of bisected.
ONE_BY_ONE_BELOW = 4
# Waits between re-reads of the columns after asking SFMC to add one (async on its side).
FIELD_POLL_DELAYS = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0)
# Waits between async status polls: bounded exponential backoff.
ASYNC_POLL_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0, 10.0)
RESULTS_PAGE_SIZE = 2500
DEADLOCK_SUFFIX = "rerun the transaction."


class DataExtensionConnector(Connector):
    plain_identity = PLAIN_KEY

    def __init__(
        self,
        config: DestinationConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy | None = None,
        token_cache: TokenCache | None = None,
    ) -> None:
        self.config = config
        options = DataExtensionOptions.of(config.options)
        self.client = SfmcClient(config, options, sleep=sleep, retry=retry, token_cache=token_cache)
        self.key = config.setting("data_extension_key")
        self.key_column = config.setting("key_column") or DEFAULT_KEY_COLUMN
        self.rowset_batch_size = options.rowset_batch_size
        self.async_threshold = options.async_threshold
        self.async_batch_size = options.async_batch_size
        self.async_wait_seconds = float(getattr(settings, "COHORTSYNC_SFMC_ASYNC_WAIT_SECONDS", 900))
        self._de_id: str | None = None
        self._lock = threading.Lock()

    @property
    def api_calls(self) -> int:
        return self.client.api_calls

    # --- schema --------------------------------------------------------------------------

    def _data_extension_id(self) -> str:
        if not self.key:
            raise ConfigurationError(
                "Enter the data extension's External Key (Contact Builder > Data Extensions).",
                code="missing_data_extension_key",
            )
        with self._lock:
            if self._de_id is None:
                self._de_id = self.client.data_extension_id(self.key)
            return self._de_id

    def _fields(self) -> dict[str, dict[str, Any]]:
        fields = self.client.data_extension_fields(self._data_extension_id())
        return {str(f["name"]).lower(): f for f in fields}

    def _check_key_column(self, fields: Mapping[str, Mapping[str, Any]]) -> None:
        column = fields.get(self.key_column.lower())
        if column is None:
            raise TargetValidationError(
                f"The data extension '{self.key}' has no column '{self.key_column}'. Create it "
                "as the primary key (Text, 254 characters), or set the destination's key "
                f"column to the data extension's primary key ({_primary_keys(fields)}).",
                code="key_column_missing",
            )
        if not column.get("isPrimaryKey"):
            raise TargetValidationError(
                f"The column '{column['name']}' of data extension '{self.key}' is not its primary "
                "key, so rows cannot be upserted by it. Make it the primary key, or set the "
                f"destination's key column to the primary key ({_primary_keys(fields)}).",
                code="key_column_not_primary",
            )

    def check_connection(self) -> ConnectionReport:
        fields = self._fields()
        self._check_key_column(fields)
        infos = self._field_infos(fields)
        usable = sum(1 for f in infos if f.is_target_compatible)
        return ConnectionReport(
            ok=True,
            summary=(
                f"Data extension '{self.key}': {len(infos)} columns, key column "
                f"'{fields[self.key_column.lower()]['name']}', {usable} Boolean column(s) "
                "available for cohorts."
            ),
            fields=infos,
        )

    def list_target_fields(self) -> list[FieldInfo]:
        return self._field_infos(self._fields())

    def _field_infos(self, fields: Mapping[str, Mapping[str, Any]]) -> list[FieldInfo]:
        infos = []
        for field_spec in fields.values():
            kind = _field_type(field_spec)
            infos.append(FieldInfo(
                name=str(field_spec["name"]),
                label=f"{field_spec['name']} ({kind})",
                type=kind,
                is_target_compatible=kind.lower() == "boolean" and not field_spec.get("isPrimaryKey"),
            ))
        return infos

    def validate_target(self, target: SyncTarget) -> None:
        fields = self._fields()
        self._check_key_column(fields)
        column = target.field.strip()
        found = self._target_column(fields, target)
        if found is None:
            found = self._create_boolean_column(column, ordinal=len(fields))
            self._check_column(found)

    def check_targets(self, targets: Sequence[SyncTarget]) -> list[TargetCheck]:
        fields = self._fields()
        self._check_key_column(fields)

        def describe(target: SyncTarget) -> TargetCheck:
            found = self._target_column(fields, target)
            if found is None:
                return TargetCheck(
                    TargetStatus.WILL_BE_CREATED,
                    f"The data extension '{self.key}' has no column '{target.field.strip()}' yet: "
                    "the first run creates it as a Boolean column.",
                )
            return TargetCheck(
                TargetStatus.EXISTS, f"Column '{found['name']}' of data extension '{self.key}': Boolean."
            )

        return target_checks(targets, describe)

    def _target_column(
        self, fields: Mapping[str, Mapping[str, Any]], target: SyncTarget
    ) -> Mapping[str, Any] | None:
        """The target's column, or None when it is missing and may be created; raises
        TargetValidationError for everything a run would refuse."""
        column = target.field.strip()
        if not column:
            raise TargetValidationError("Enter the Boolean column this sync writes to.", code="no_target")
        mapping = _property_mapping(target)
        missing = [str(c) for c in mapping.values() if str(c).lower() not in fields]
        if missing:
            raise TargetValidationError(
                f"The data extension '{self.key}' has no column(s) {', '.join(repr(m) for m in missing)} "
                "named in the property mapping: create them, or fix the mapping. (SFMC would "
                "silently drop values for unknown columns.)", code="mapped_column_missing",
            )
        found = fields.get(column.lower())
        if found is None:
            if not target.options.get("create_missing_field", True):
                raise TargetValidationError(
                    f"The data extension '{self.key}' has no column '{column}'. Create it in "
                    "Contact Builder as a nullable Boolean column named exactly "
                    f"'{column}', or allow CohortSync to create missing columns.",
                    code="target_missing",
                )
            return None
        self._check_column(found)
        return found

    def _check_column(self, found: Mapping[str, Any]) -> None:
        kind = _field_type(found)
        if kind.lower() != "boolean":
            raise TargetValidationError(
                f"The column '{found['name']}' of data extension '{self.key}' is {kind}, but "
                "cohort membership is written as true/false: make it a Boolean column or "
                "pick another column.",
                code="target_wrong_type",
            )
        if found.get("isPrimaryKey"):
            raise TargetValidationError(
                f"The column '{found['name']}' is the data extension's primary key and cannot "
                "hold cohort membership.", code="target_is_key",
            )

    def _create_boolean_column(self, column: str, *, ordinal: int) -> dict[str, Any]:
        de_id = self._data_extension_id()
        self.client.data_extension_add_field(de_id, {
            "name": column, "type": "Boolean", "isNullable": True, "isPrimaryKey": False,
            "ordinal": ordinal,
        })
        # SFMC adds columns asynchronously: only a re-read proves the column exists.
        waited = 0.0
        for delay in (0.0, *FIELD_POLL_DELAYS):
            if delay:
                self.client.sleep(delay)
                waited += delay
            found = self._fields().get(column.lower())
            if found is not None:
                return found
        raise TargetValidationError(
            f"SFMC accepted the request to add the Boolean column '{column}' to data extension "
            f"'{self.key}', but it had not appeared after {waited:.0f}s. Try again in a "
            "minute, or create the column in Contact Builder.", code="target_create_pending",
        )

    # --- pushing -------------------------------------------------------------------------

    def normalize_identity(self, raw_value: Any) -> str:
        return contact_key_normalize(raw_value)

    def send_plan(self, total_changes: int) -> SendPlan:
        """Rowsets for runs up to async_threshold changes, async upserts above it."""
        size = self.rowset_batch_size if total_changes <= self.async_threshold else self.async_batch_size
        return SendPlan(UnitKind.BATCHES, batch_size=size, concurrency=self.client.max_concurrency)

    def profile_properties(self, target: SyncTarget) -> Sequence[str]:
        """The properties the sync's property_mapping writes to columns."""
        return tuple(_property_mapping(target))

    def push(self, target: SyncTarget, changes: Sequence[MembershipChange]) -> list[PushOutcome]:
        """Rowset for small batches, async upsert for batches above rowset_batch_size or
        async_threshold (so a run past the threshold is written async, tail batch included)."""
        if not changes:
            return []
        mapping = _property_mapping(target)
        if len(changes) <= min(self.rowset_batch_size, self.async_threshold):
            rows = [
                {"keys": {self.key_column: c.identity},
                 "values": {**mapped_values(mapping, c.properties), target.field: c.is_member}}
                for c in changes
            ]
            return self._rowset_isolate(list(changes), rows)
        items = [
            {**mapped_values(mapping, c.properties), self.key_column: c.identity, target.field: c.is_member}
            for c in changes
        ]
        return self._async_push(list(changes), items, deadlock_retries=1)

    def _rowset_isolate(self, changes: list[MembershipChange], rows: list[dict[str, Any]]) -> list[PushOutcome]:
        """Write rows; when SFMC rejects some, find which ones.

        The rowset is not atomic and its errors are not indexed: rows before the first bad
        one are saved, the rest rejected. Re-sending halves (upserts are idempotent) narrows
        the rejection down to the users it belongs to.
        """
        outcomes: list[PushOutcome] = []
        for start, end, encoded in chunks_by_size(rows, max_items=ROWSET_MAX_BATCH):
            part_changes, part_rows = changes[start:end], rows[start:end]
            try:
                result = self.client.rowset_upsert(self.key, part_rows, encoded=encoded)
            except PermanentError as exc:
                if exc.code != "payload_too_large" or len(part_rows) == 1:
                    raise
                middle = len(part_rows) // 2
                outcomes += self._rowset_isolate(part_changes[:middle], part_rows[:middle])
                outcomes += self._rowset_isolate(part_changes[middle:], part_rows[middle:])
                continue
            if result.ok:
                outcomes += outcomes_ok(part_changes)
            elif len(part_rows) == 1:
                outcomes += outcomes_failed(
                    part_changes, message=" ".join(result.messages), code=result.code
                )
            elif len(part_rows) <= ONE_BY_ONE_BELOW:
                for change, row in zip(part_changes, part_rows, strict=True):
                    outcomes += self._rowset_isolate([change], [row])
            else:
                middle = len(part_rows) // 2
                outcomes += self._rowset_isolate(part_changes[:middle], part_rows[:middle])
                outcomes += self._rowset_isolate(part_changes[middle:], part_rows[middle:])
        return outcomes

    def _async_push(
        self, changes: list[MembershipChange], items: list[dict[str, Any]], *, deadlock_retries: int
    ) -> list[PushOutcome]:
        outcomes: list[PushOutcome | None] = [None] * len(changes)
        for start, end, encoded in chunks_by_size(items, max_items=self.async_batch_size):
            for offset, outcome in enumerate(self._async_job(changes[start:end], items[start:end], encoded)):
                outcomes[start + offset] = outcome
        if deadlock_retries > 0:
            # SFMC asks for deadlocked rows to be sent again; do it once before reporting.
            again = [i for i, o in enumerate(outcomes) if o is not None and o.code == "deadlock"]
            if again:
                retried = self._async_push(
                    [changes[i] for i in again], [items[i] for i in again], deadlock_retries=deadlock_retries - 1
                )
                for index, outcome in zip(again, retried, strict=True):
                    outcomes[index] = outcome
        return [o for o in outcomes if o is not None]

    def _async_job(
        self, changes: list[MembershipChange], items: list[dict[str, Any]], encoded: bytes
    ) -> list[PushOutcome]:
        request_id = self.client.async_upsert_submit(self.key, items, encoded=encoded)
        status = self._await_async(request_id)
        if status is None:
            return outcomes_failed(
                changes, retriable=True, code="async_timeout",
                message=f"SFMC had not finished the queued upsert {request_id} after "
                f"{self.async_wait_seconds:.0f}s; the rows may still be written and will be sent again.",
            )
        if status.request_status.lower() == "error":
            return outcomes_failed(
                changes, retriable=True, code="async_error",
                message=f"SFMC reported the queued upsert {request_id} as failed (status Error).",
            )
        if status.result_status.lower() == "ok" and not status.has_errors:
            return outcomes_ok(changes)
        return self._async_results(request_id, changes)

    def _await_async(self, request_id: str) -> Any:
        waited, polls = 0.0, 0
        while True:
            status = self.client.async_status(request_id)
            # None: not indexed yet, which is normal right after the submit.
            if status is not None and status.request_status.lower() in ("complete", "error"):
                return status
            if waited >= self.async_wait_seconds:
                return None
            delay = ASYNC_POLL_DELAYS[min(polls, len(ASYNC_POLL_DELAYS) - 1)]
            self.client.sleep(delay)
            waited += delay
            polls += 1

    def _async_results(self, request_id: str, changes: list[MembershipChange]) -> list[PushOutcome]:
        """Map /results items to users by position (SFMC returns them in submission order).

        Results that do not come to exactly one per row are not mapped at all: a missing or
        repeated page would shift every result onto the wrong user."""
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            answer = self.client.async_results(
                request_id, page=page, page_size=RESULTS_PAGE_SIZE, rows=len(changes)
            )
            # A later page must say it is that page: an endpoint that ignores $page would
            # repeat page 1.
            if answer.items and answer.page != page and (page > 1 or answer.page is not None):
                raise answer.unexpected(f"page {answer.page} where page {page} was asked for")
            items += answer.items
            if not answer.items or len(items) >= len(changes) or len(answer.items) < (answer.page_size or 0):
                break
            page += 1
        if len(items) != len(changes):
            raise answer.unexpected(f"{len(items)} results for {len(changes)} rows")
        return [_result_outcome(change, item) for change, item in zip(changes, items, strict=True)]


def _result_outcome(change: MembershipChange, item: Mapping[str, Any]) -> PushOutcome:
    """One row's result, its texts already scrubbed by the client."""
    if str(item["status"]).lower() == "ok":
        return PushOutcome(identity=change.identity, ok=True)
    message = str(item.get("message") or "")
    details = [str(e.get("errorMessage") or "") for e in item.get("errors") or []]
    text = " ".join(dict.fromkeys(m for m in [message, *details] if m))
    if message.strip().lower().endswith(DEADLOCK_SUFFIX):
        return PushOutcome(identity=change.identity, ok=False, code="deadlock", message=text, retriable=True)
    return PushOutcome(
        identity=change.identity, ok=False, code=str(item.get("errorCode", "") or ""),
        message=text or "SFMC rejected this row without a reason.",
    )


def _property_mapping(target: SyncTarget) -> Mapping[str, str]:
    """The sync's {"profile property": "Column"} mapping (a sync option of this kind)."""
    return target.options.get("property_mapping") or {}


def _field_type(field_spec: Mapping[str, Any]) -> str:
    return str(field_spec.get("type") or field_spec.get("fieldType") or "Text")


def _primary_keys(fields: Mapping[str, Mapping[str, Any]]) -> str:
    keys = [str(f["name"]) for f in fields.values() if f.get("isPrimaryKey")]
    return ", ".join(keys) if keys else "it has none"
