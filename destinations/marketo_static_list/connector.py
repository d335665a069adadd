"""StaticListConnector: a cohort is one Marketo static list; members are in it, leavers not.

The sync's field names the list: its exact name (case included), or `id:1234`. Joining
users' leads are created or updated by email (the sync endpoint, or bulk import with
`listId` above bulk_threshold) and added to the list; leaving users are removed from it by
lead id, taken from the synced state where it is known (every lead added is), else looked up
by email. A lead that is already out of the list (1015), no longer exists (1004) or was
never created counts as removed.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from destinations.base import (
    ConnectionReport,
    DestinationConfig,
    FieldInfo,
    MembershipChange,
    PushOutcome,
    SyncTarget,
    TargetCheck,
    TargetStatus,
    target_checks,
)
from destinations.errors import UNEXPECTED_RESPONSE, TargetValidationError
from destinations.marketo import messages
from destinations.marketo.connector import (
    INVALID_EMAIL,
    MarketoInstanceConnector,
    email_refusal,
    emails_grouped,
    outcomes_by_change,
)
from destinations.marketo_static_list import lists
from destinations.marketo_static_list.files import ListImportFile
from destinations.marketo_static_list.lists import StaticList

LIST_ID_RE = re.compile(r"id:\s*(?P<id>[0-9]+)", re.IGNORECASE)
LIST_NOT_FOUND = "list_not_found"
NOT_ADDED = "list_add_refused"
# Reasons that mean the lead is not in the list, which is what a removal wants.
ALREADY_OUT = frozenset({"1004", "1015"})
NO_RESULT = (
    "Marketo's answer had no documented status for this lead, so it is not acknowledged; it "
    "is sent again by the next run."
)


def list_reference(field: str) -> tuple[str, int | None]:
    """A sync's field: ("", 1234) for 'id:1234', else (the exact list name, None)."""
    match = LIST_ID_RE.fullmatch(field.strip())
    return ("", int(match["id"])) if match else (field.strip(), None)


class StaticListConnector(MarketoInstanceConnector):
    uses_remote_ids = True

    def __init__(
        self,
        config: DestinationConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(config, sleep=sleep, clock=clock)
        self._lists: dict[str, StaticList] = {}
        # Re-entered: a push that finds the list unknown validates it while holding it.
        self._resolve_lock = threading.RLock()

    # --- connection and lists -------------------------------------------------------------

    def check_connection(self) -> ConnectionReport:
        instance = self.instance_logged_in()
        fields = self.list_target_fields()
        return ConnectionReport(ok=True, summary=f"{instance}: {len(fields)} static lists usable for cohorts.",
                                fields=fields)

    def list_target_fields(self) -> list[FieldInfo]:
        return [
            FieldInfo(name=found.name, label=f"{found.name} (id:{found.id})", type="static list",
                      is_target_compatible=True)
            for found in lists.lists_all(self.client)
        ]

    def validate_target(self, target: SyncTarget) -> StaticList:
        """The static list the sync's field names; remembered for the pushes."""
        name, list_id = list_reference(target.field or "")
        if not name and list_id is None:
            raise TargetValidationError("Enter the name of the Marketo static list this sync fills.",
                                        code="no_target")
        found = lists.list_find(self.client, name=name, list_id=list_id)
        if found is None:
            wanted = f"with id {list_id}" if list_id is not None else f"named '{name}'"
            raise TargetValidationError(
                f"Marketo has no static list {wanted}. Names match exactly, capitals included. Create "
                "the list in Marketo (Database or a program > New > New List), or use the name of an "
                "existing one (or id:1234 for a list by its id).",
                code=LIST_NOT_FOUND,
            )
        with self._resolve_lock:
            self._lists[target.field] = found
        return found

    def check_targets(self, targets: Sequence[SyncTarget]) -> list[TargetCheck]:
        def describe(target: SyncTarget) -> TargetCheck:
            found = self.validate_target(target)  # only reads
            return TargetCheck(TargetStatus.EXISTS, f"Static list '{found.name}' (id:{found.id}).")

        return target_checks(targets, describe)

    def _list(self, target: SyncTarget) -> StaticList:
        # Parallel first pushes would each look the list up; one does, the others wait.
        with self._resolve_lock:
            return self._lists.get(target.field) or self.validate_target(target)

    # --- batches ----------------------------------------------------------------------------

    def push(self, target: SyncTarget, changes: Sequence[MembershipChange]) -> list[PushOutcome]:
        if not changes:
            return []
        static_list = self._list(target)
        members, invalid = emails_grouped(changes)
        remote_ids: dict[str, str] = {}
        for change in changes:
            if change.remote_id:
                remote_ids.setdefault(str(change.identity).strip().lower(), change.remote_id)
        results = self._add(static_list, [email for email, member in members.items() if member])
        results |= self._remove(static_list, {
            email: remote_ids.get(email, "") for email, member in members.items() if not member
        })
        return outcomes_by_change(changes, members, invalid, results, stays=(
            "Left the cohort, but another member has the same email, so the lead stays in the list."))

    def _add(self, static_list: StaticList, emails: list[str]) -> dict[str, PushOutcome]:
        """Create or update each lead by email, then add the leads to the list."""
        outcomes: dict[str, PushOutcome] = {}
        for start in range(0, len(emails), self._sync_batch):
            chunk = emails[start:start + self._sync_batch]
            lead_ids: dict[str, int] = {}
            for email, result in zip(chunk, self.client.sync_leads(records=[{"email": e} for e in chunk]), strict=True):
                lead_id = result.get("id")
                if result.get("status") in ("created", "updated") and isinstance(lead_id, int) and not isinstance(lead_id, bool):
                    lead_ids[email] = lead_id
                else:
                    outcomes[email] = _lead_refused(result)
            added = lists.list_leads_change(self.client, list_id=static_list.id,
                                            lead_ids=sorted(set(lead_ids.values())), add=True) if lead_ids else {}
            for email, lead_id in lead_ids.items():
                outcomes[email] = _list_outcome(email, lead_id, added[lead_id], add=True)
        return outcomes

    def _remove(self, static_list: StaticList, leavers: Mapping[str, str]) -> dict[str, PushOutcome]:
        """Remove each leaver's leads from the list: by the lead id the synced state keeps,
        else by the ids of the leads with that email (none: already out)."""
        ids: dict[str, list[int]] = {
            email: [int(remote_id)] for email, remote_id in leavers.items() if remote_id.isdigit()
        }
        unknown = [email for email in leavers if email not in ids]
        if unknown:
            ids |= {email: found for email, found in lists.lead_ids_by_email(self.client, unknown).items()
                    if email in leavers}
        outcomes = {
            email: PushOutcome(email, ok=True, message="Marketo has no lead with this email, so it is not in the list.")
            for email in leavers if not ids.get(email)
        }
        all_ids = sorted({lead_id for found in ids.values() for lead_id in found})
        removed = lists.list_leads_change(self.client, list_id=static_list.id, lead_ids=all_ids, add=False) if all_ids else {}
        for email, found in ids.items():
            if found:
                results = [_list_outcome(email, lead_id, removed[lead_id], add=False) for lead_id in found]
                # Every lead with the email must be out of the list.
                outcomes[email] = next((o for o in results if not o.ok), results[0])
        return outcomes

    # --- files: bulk import with listId (adds), removals by id ---------------------------

    def new_file(self, target: SyncTarget) -> ListImportFile:
        self._list(target)
        return ListImportFile(check=email_refusal)

    def push_file(self, target: SyncTarget, file: ListImportFile) -> list[PushOutcome]:  # type: ignore[override]
        """Import the file's joining users into the list, then remove its leaving users;
        outcomes only for the users that failed."""
        static_list = self._list(target)
        failed = [PushOutcome(email, ok=False, code=INVALID_EMAIL, message=message) for email, message in file.invalid]
        leavers = file.leavers
        if file.rows:
            failed += self._import(file.take(), list_id=static_list.id)
        if leavers:
            failed += [o for o in self._remove(static_list, leavers).values() if not o.ok]
        return failed


def _lead_refused(result: Mapping[str, Any]) -> PushOutcome:
    """A lead the sync endpoint did not create or update (its reasons scrubbed)."""
    if result.get("status") != "skipped":
        return PushOutcome("", ok=False, code=UNEXPECTED_RESPONSE, retriable=True, message=NO_RESULT)
    first = result["reasons"][0] if result.get("reasons") else {}
    code, said = first.get("code", ""), first.get("message", "")
    return PushOutcome("", ok=False, code=code, message=messages.record_message(code, said),
                       retriable=messages.record_is_retriable(code))


def _list_outcome(email: str, lead_id: int, result: Mapping[str, Any], *, add: bool) -> PushOutcome:
    """One lead's answer to an add to or a removal from the list."""
    done = "added" if add else "removed"
    status = result.get("status")
    if status == done:
        return PushOutcome(email, ok=True, remote_id=str(lead_id))
    if status != "skipped":
        return PushOutcome(email, ok=False, code=UNEXPECTED_RESPONSE, retriable=True, message=NO_RESULT)
    first = result["reasons"][0] if result.get("reasons") else {}
    code, said = first.get("code", ""), first.get("message", "")
    if not add and code in ALREADY_OUT:
        # Already out of the list (1015), or the lead no longer exists (1004): removed.
        return PushOutcome(email, ok=True, remote_id=str(lead_id) if code == "1015" else "")
    return PushOutcome(email, ok=False, code=code or NOT_ADDED, retriable=messages.record_is_retriable(code),
                       message=f"Marketo did not {'add this lead to' if add else 'remove this lead from'} the "
                       f"static list. {messages.record_message(code, said)}")
