"""Static lists of the Marketo emulator: the lists, their members, and the answers of the
list endpoints (Get Lists, add to / remove from a list, list members, is member).

Plain data and answers; the emulator (destinations.sandbox.marketo) routes the requests,
applies its limits and wraps these results in Marketo's envelope, holding its lock while it
calls in. Where the real behaviour is undocumented the choice made here is marked "sandbox
choice".
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from werkzeug.wrappers import Request

# Lists every fresh emulator has (the demo and the tests sync to them).
DEFAULT_LISTS = ("Pro users", "VIP customers", "Churn risk (demo)", "Recent signups")
# Get Lists pages: Marketo's batchSize is at most 300.
MAX_PAGE_SIZE = 300
MAX_LEADS_PER_CALL = 300


class ListRequestError(Exception):
    """A refused list request: an envelope error code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code)
        self.code = code
        self.message = message


class StaticLists:
    """The emulator's static lists (not thread-safe on its own: the emulator's lock)."""

    def __init__(self) -> None:
        self._ids = itertools.count(1001)
        self._lists: dict[int, dict[str, Any]] = {}
        self._members: dict[int, set[int]] = {}
        for name in DEFAULT_LISTS:
            self.add(name)

    def add(self, name: str, list_id: int | None = None) -> int:
        list_id = int(list_id) if list_id is not None else next(self._ids)
        self._lists[list_id] = {
            "id": list_id, "name": str(name), "description": "", "programName": "CohortSync demo",
            "workspaceName": "Default", "createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2024-01-01T00:00:00Z",
        }
        self._members.setdefault(list_id, set())
        return list_id

    def delete(self, list_id: int) -> None:
        self._lists.pop(list_id, None)
        self._members.pop(list_id, None)

    def exists(self, list_id: int) -> bool:
        return list_id in self._lists

    def members(self, list_id: int) -> set[int]:
        return self._members.get(list_id, set())

    def state(self, limit: int | None, email_of: Callable[[int], str]) -> list[dict[str, Any]]:
        lists = []
        for list_id, data in sorted(self._lists.items()):
            members = sorted(self._members[list_id])
            shown = members if limit is None else members[:limit]
            lists.append({"id": list_id, "name": data["name"], "member_count": len(members),
                          "members": [email_of(lead_id) for lead_id in shown]})
        return lists

    # --- endpoints ----------------------------------------------------------------------

    def find(self, *, names: Iterable[str], ids: Iterable[str], page_size: int, page_token: str) -> dict[str, Any]:
        """Get Lists: by exact name (case-sensitive, as Marketo's name filter) and/or id,
        a page at a time; the envelope's extra keys (nextPageToken) come back with `result`."""
        wanted_names = {n for n in names if n}
        wanted_ids = {int(i) for i in ids if str(i).strip().isdigit()}
        found = [
            data for list_id, data in sorted(self._lists.items())
            if (not wanted_names or data["name"] in wanted_names) and (not wanted_ids or list_id in wanted_ids)
        ]
        size = max(1, min(MAX_PAGE_SIZE, page_size))
        start = int(page_token) if page_token.isdigit() else 0
        page = [dict(data) for data in found[start:start + size]]
        answer: dict[str, Any] = {"result": page}
        if start + size < len(found):
            answer["nextPageToken"] = str(start + size)
        return answer

    def change(self, list_id: int, lead_ids: list[Any], *, add: bool, lead_exists: Callable[[int], bool]) -> list[dict[str, Any]]:
        """Add to or remove from a list: a result per lead id, in input order."""
        if list_id not in self._lists:
            raise ListRequestError("1013", "Static list not found")
        if not lead_ids:
            raise ListRequestError("701", "'input' cannot be blank")
        if len(lead_ids) > MAX_LEADS_PER_CALL:
            # Sandbox choice: the real code for more than 300 ids is undocumented.
            raise ListRequestError("1003", f"At most {MAX_LEADS_PER_CALL} leads per call")
        members = self._members[list_id]
        results = []
        for raw in lead_ids:
            try:
                lead_id = int(raw)
            except (TypeError, ValueError):
                results.append(_skipped(raw, "1003", "Invalid lead id"))
                continue
            if not lead_exists(lead_id):
                results.append(_skipped(lead_id, "1004", "Lead not found"))
            elif add:
                members.add(lead_id)
                results.append({"id": lead_id, "status": "added"})
            elif lead_id in members:
                members.discard(lead_id)
                results.append({"id": lead_id, "status": "removed"})
            else:
                results.append(_skipped(lead_id, "1015", "Lead not in list"))
        return results

    def is_member(self, list_id: int, lead_ids: list[str]) -> list[dict[str, Any]]:
        if list_id not in self._lists:
            raise ListRequestError("1013", "Static list not found")
        members = self._members[list_id]
        return [
            {"id": int(raw), "status": "memberof" if int(raw) in members else "notmemberof"}
            for raw in lead_ids if str(raw).isdigit()
        ]


def _skipped(lead_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"id": lead_id, "status": "skipped", "reasons": [{"code": code, "message": message}]}


# --- requests -------------------------------------------------------------------------------


def lists_find(lists: StaticLists, request: Request) -> dict[str, Any]:
    """GET /rest/v1/lists.json. Sandbox choice: a name filter is one name (names may hold
    commas); several are given as repeated parameters."""
    return lists.find(
        names=request.args.getlist("name"), ids=request.args.getlist("id"),
        page_size=request.args.get("batchSize", MAX_PAGE_SIZE, type=int),
        page_token=request.args.get("nextPageToken", ""),
    )


def list_leads(
    lists: StaticLists, request: Request, list_id: int, *, ismember: bool, leads: Mapping[int, dict[str, Any]]
) -> list[dict[str, Any]]:
    """/rest/v1/lists/{id}/leads.json (GET members, POST add, DELETE remove) and
    .../leads/ismember.json."""
    if ismember:
        return lists.is_member(list_id, request.args.getlist("id"))
    if request.method == "GET":
        if not lists.exists(list_id):
            raise ListRequestError("1013", "Static list not found")
        return [dict(leads[i]) for i in sorted(lists.members(list_id))]
    if request.method not in ("POST", "DELETE"):
        raise ListRequestError("605", "HTTP Method not supported")
    return lists.change(list_id, _lead_ids(request), add=request.method == "POST",
                        lead_exists=lambda lead_id: lead_id in leads)


def _lead_ids(request: Request) -> list[Any]:
    """The lead ids of an add or remove: a JSON body {"input": [{"id": N}, ...]} or id= query
    parameters."""
    if request.args.getlist("id"):
        return request.args.getlist("id")
    if "json" not in (request.mimetype or ""):
        raise ListRequestError("612", "Invalid Content Type")
    try:
        body = json.loads(request.get_data(as_text=True))
    except ValueError:
        raise ListRequestError("609", "Invalid JSON") from None
    records = body.get("input") if isinstance(body, dict) else None
    if not isinstance(records, list):
        raise ListRequestError("701", "'input' cannot be blank")
    return [record.get("id") if isinstance(record, dict) else None for record in records]
