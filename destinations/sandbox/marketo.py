"""An in-memory Marketo Engage emulator (identity, lead sync, describe, bulk import, static
lists: destinations.sandbox.marketo_lists).

It behaves like the documented API closely enough that the production client cannot tell
the difference: HTTP 200 envelopes with string error codes, sticky tokens whose expires_in
counts down, per-record created/updated/skipped results in input order, rate, concurrency
and daily limits, and a bulk import queue whose jobs move Queued -> Importing ->
Complete/Failed. Where the real behaviour is undocumented the choice made here is marked
"sandbox choice". Thread-safe; everything lives in memory.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import io
import itertools
import json
import re
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.wrappers import Request, Response

from destinations.sandbox.canned import CannedAnswers
from destinations.sandbox.latency import answer_after
from destinations.sandbox.marketo_lists import ListRequestError, StaticLists, list_leads, lists_find

STANDARD_FIELDS: list[tuple[str, str, str, bool]] = [
    # (REST name, display name, data type, read-only)
    ("id", "Id", "integer", True),
    ("email", "Email Address", "email", False),
    ("firstName", "First Name", "string", False),
    ("lastName", "Last Name", "string", False),
    ("company", "Company Name", "string", False),
    ("leadScore", "Lead Score", "integer", False),
    ("mktoIsCustomer", "Is Customer", "boolean", False),
    ("createdAt", "Created At", "datetime", True),
    ("updatedAt", "Updated At", "datetime", True),
]
CUSTOM_FIELDS: list[tuple[str, str, str, bool]] = [
    ("inCohortDemo", "In Cohort Demo", "boolean", False),
    ("cohortProUsers", "Pro Users Cohort", "boolean", False),
    ("cohortChurnRisk", "Churn Risk Cohort", "boolean", False),
    ("cohortRecentSignups", "Recent Signups Cohort", "boolean", False),
    ("cohortStaticVip", "VIP Cohort", "boolean", False),
    ("favoriteColor", "Favorite Color", "string", False),
    ("cohortCrmLocked", "CRM Locked Cohort", "boolean", True),
]
SYNC_ACTIONS = ("createOnly", "updateOnly", "createOrUpdate", "createDuplicate")
ENVELOPE_MESSAGES = {
    "601": "Access token invalid", "602": "Access token expired",
    "603": "Access denied", "604": "Request time-out", "608": "API Temporarily Unavailable",
    "611": "System error", "713": "Transient Error", "1016": "Too many imports",
}
DEFAULT_CONFIG: dict[str, Any] = {
    "client_id": "sandbox-client-id",
    "client_secret": "sandbox-client-secret",
    "token_ttl": 3600,
    "calls_per_20s": 100,
    "max_concurrency": 10,
    "daily_quota": 50_000,
    "max_batch_size": 300,
    "max_body_bytes": 1_000_000,
    "max_uri_bytes": 8_192,
    "max_bulk_bytes": 10_000_000,
    "bulk_queue_limit": 10,
    "bulk_max_importing": 2,
    # 0: a job moves one step (Queued -> Importing -> done) each time its status is read;
    # above 0: each step takes that many seconds.
    "bulk_step_seconds": 0.0,
    "latency": 0.0,
    "latency_jitter": 0.0,  # see destinations.sandbox.latency
    # {"email": {"code": "1003", "message": "..."}}: these leads are refused.
    "reject_emails": {},
}
_QUOTA_ZONE = ZoneInfo("America/Chicago")
_BATCH_ID_RE = re.compile(r"/batch/\d+")
_LIST_ID_RE = re.compile(r"/lists/\d+")
_LIST_LEADS_RE = re.compile(r"/rest/v1/lists/(?P<id>\d+)/leads(?P<ismember>/ismember)?\.json")


class SandboxError(Exception):
    """An envelope error: HTTP 200, success false."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(code)
        self.code = code
        self.message = message or ENVELOPE_MESSAGES.get(code, "Error")


@dataclass
class BulkJob:
    batch_id: int
    content: str
    delimiter: str
    status: str = "Queued"
    changed_at: float = field(default_factory=time.monotonic)
    processed: int = 0
    header: list[str] = field(default_factory=list)
    failures: list[list[str]] = field(default_factory=list)
    warnings: list[list[str]] = field(default_factory=list)
    message: str = ""
    # (status, message) once the rows are imported; the job shows it when its step is over.
    outcome: tuple[str, str] | None = None
    # listId: imported leads are also added to this static list.
    list_id: int | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "batchId": self.batch_id, "importId": str(self.batch_id), "status": self.status,
            "numOfLeadsProcessed": self.processed, "numOfRowsFailed": len(self.failures),
            "numOfRowsWithWarning": len(self.warnings), "message": self.message,
        }


class MarketoSandbox:
    """WSGI app mounted at /marketo; also driven from Python (reset, state, configure)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.reset()

    # --- Python API ---------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.config: dict[str, Any] = json.loads(json.dumps(DEFAULT_CONFIG))
            self._field_ids = itertools.count(100)
            self._fields: dict[str, dict[str, Any]] = {}
            for spec in STANDARD_FIELDS + CUSTOM_FIELDS:
                self._add_field(*spec)
            self._lead_ids = itertools.count(1001)
            self._leads: dict[int, dict[str, Any]] = {}
            self._by_email: dict[str, list[int]] = {}
            self._tokens: dict[str, float] = {}
            self._current_token = ""
            self._injected: list[dict[str, Any]] = []
            self.canned = CannedAnswers()
            self.lists = StaticLists()
            self._window: deque[float] = deque()
            # When each accepted call arrived (time.monotonic), the latest ones: what tests
            # check windows against (accepted_arrivals).
            self._accepted: deque[float] = deque(maxlen=100_000)
            self._in_flight = 0
            self._daily_used = 0
            self._day = self._today()
            self._calls: Counter[str] = Counter()
            # Calls refused as a whole, by Marketo error code (606, 615, 601...).
            self._refused: Counter[str] = Counter()
            self._tokens_issued = 0
            self._token_in_query = 0
            self._job_ids = itertools.count(3401)
            self._jobs: dict[int, BulkJob] = {}
            # Timed steps: when each importing slot is free again (see _import_slot_take).
            self._import_slots_free_at: list[float] = []

    def configure(self, **knobs: Any) -> None:
        """Change limits/faults. Besides DEFAULT_CONFIG's keys: fields=[{name, displayName,
        dataType, readOnly}], leads=[{email, ...}] (duplicates allowed, to provoke 1007),
        lists=[{name, id?, members?: [email, ...]}], delete_lists=[id, ...],
        inject=[{code: "606"|"502"|..., times: n, path: "substring"}], expire_tokens=True,
        answers=[...] (canned answers: destinations.sandbox.canned)."""
        with self._lock:
            for key, value in knobs.items():
                if key == "reject_emails":
                    self.config[key] = {str(k).strip().lower(): dict(v) for k, v in dict(value).items()}
                elif key in DEFAULT_CONFIG:
                    default = DEFAULT_CONFIG[key]
                    self.config[key] = type(default)(value) if isinstance(default, int | float) else value
                elif key == "fields":
                    for spec in value:
                        self._add_field(spec["name"], spec.get("displayName", spec["name"]),
                                        spec.get("dataType", "boolean"), bool(spec.get("readOnly")))
                elif key == "leads":
                    for lead in value:
                        self._create_lead({k: v for k, v in lead.items() if k != "id"})
                elif key == "inject":
                    for fault in value:
                        self._injected.append({"code": str(fault["code"]), "times": int(fault.get("times", 1)),
                                               "path": str(fault.get("path", ""))})
                elif key == "answers":
                    self.canned.replace(value)
                elif key == "lists":
                    for spec in value:
                        list_id = self.lists.add(spec["name"], spec.get("id"))
                        for email in spec.get("members", []):
                            self.lists.members(list_id).update(self._by_email.get(str(email).strip().lower(), []))
                elif key == "delete_lists":
                    for list_id in value:
                        self.lists.delete(int(list_id))
                elif key == "expire_tokens":
                    if value:
                        self._tokens = dict.fromkeys(self._tokens, 0.0)
                else:
                    raise ValueError(f"Unknown Marketo sandbox setting '{key}'.")

    def state(self, limit: int | None = None) -> dict[str, Any]:
        with self._lock:
            self._advance_jobs()
            # Only the leads asked for are copied: the bench reads the counts with a million leads held.
            lead_ids = sorted(self._leads)
            leads = [dict(self._leads[i]) for i in (lead_ids if limit is None else lead_ids[:limit])]
            jobs = [job.summary() for job in self._jobs.values()]
            return {
                "leads": leads,
                "lead_count": len(lead_ids),
                "fields": [dict(f) for f in self._fields.values()],
                "bulk_jobs": jobs if limit is None else jobs[:limit],
                "lists": self.lists.state(limit, lambda lead_id: self._leads[lead_id]["email"]),
                "calls": {
                    "total": sum(self._calls.values()), "by_endpoint": dict(self._calls),
                    "refused": dict(self._refused),
                    "tokens_issued": self._tokens_issued, "daily_used": self._daily_used,
                    "token_in_query": self._token_in_query,
                },
            }

    def accepted_arrivals(self) -> list[float]:
        """When each call the limits let through arrived (time.monotonic, oldest first; the
        latest 100,000). Identity calls are not among them: Marketo does not limit them."""
        with self._lock:
            return list(self._accepted)

    def list_members(self, name: str) -> set[str]:
        """The (lower-cased) emails of the members of the static list called `name`."""
        with self._lock:
            for data in self.state()["lists"]:
                if data["name"] == name:
                    return {email.lower() for email in data["members"]}
            raise KeyError(name)

    def lead(self, email: str) -> dict[str, Any] | None:
        """The lead with this email (the newest if several), or None."""
        with self._lock:
            ids = self._by_email.get(email.strip().lower())
            return dict(self._leads[ids[-1]]) if ids else None

    # --- WSGI ---------------------------------------------------------------------------

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        return self._respond(request)(environ, start_response)

    def _respond(self, request: Request) -> Response:
        # A call counts against the window from when it arrived, not from when a lock held
        # by other calls' processing let it through, as at a real API's edge.
        arrived = time.monotonic()
        path = request.path
        if path.startswith("/_sandbox/"):
            return self._inspection(request, path)
        canned = self.canned.take(request)
        if canned is not None:
            self._count(request, path)
            return canned
        if path == "/identity/oauth/token":
            self._count(request, path)
            return self._identity(request)
        self._count(request, path)
        if len(request.full_path.encode()) > self.config["max_uri_bytes"]:
            return Response("URI too long", status=414)
        limit = self.config["max_bulk_bytes"] if path.startswith("/bulk/") else self.config["max_body_bytes"]
        if (request.content_length or 0) > limit:
            return Response("<html><body>413 Request Entity Too Large</body></html>", status=413,
                            content_type="text/html")
        try:
            fault = self._take_fault(path)
            if fault == "502":
                return Response("<html><body>502 Bad Gateway</body></html>", status=502,
                                content_type="text/html")
            if fault:
                raise SandboxError(fault)
            self._authenticate(request)
            self._enter(arrived)
        except SandboxError as exc:
            with self._lock:
                self._refused[exc.code] += 1
            return _envelope_error(exc)
        try:
            try:
                response = self._route(request, path)
            except SandboxError as exc:
                response = _envelope_error(exc)
            answer_after(arrived, float(self.config["latency"]), float(self.config["latency_jitter"]))
            return response
        finally:
            with self._lock:
                self._in_flight -= 1

    def _count(self, request: Request, path: str) -> None:
        path = _LIST_ID_RE.sub("/lists/{id}", _BATCH_ID_RE.sub("/batch/{id}", path))
        with self._lock:
            self._calls[f"{request.method} {path}"] += 1

    def _take_fault(self, path: str) -> str:
        with self._lock:
            for fault in self._injected:
                if fault["times"] > 0 and fault["path"] in path:
                    fault["times"] -= 1
                    self._injected = [f for f in self._injected if f["times"] > 0]
                    return fault["code"]
        return ""

    def _authenticate(self, request: Request) -> None:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not token and request.values.get("access_token"):
            token = request.values["access_token"]  # deprecated, still accepted; counted
            with self._lock:
                self._token_in_query += 1
        with self._lock:
            expires_at = self._tokens.get(token)
        if expires_at is None:
            raise SandboxError("601")
        if expires_at <= time.time():
            raise SandboxError("602")

    def _enter(self, now: float) -> None:
        """Apply the concurrency, 20-second and daily limits to one accepted call."""
        with self._lock:
            while self._window and now - self._window[0] >= 20.0:
                self._window.popleft()
            if self._in_flight >= int(self.config["max_concurrency"]):
                raise SandboxError("615", f"Concurrent access limit '{self.config['max_concurrency']}' reached")
            if len(self._window) >= int(self.config["calls_per_20s"]):
                raise SandboxError("606", f"Max rate limit '{self.config['calls_per_20s']}' exceeded with in '20' secs")
            today = self._today()
            if today != self._day:
                self._day, self._daily_used = today, 0
            if self._daily_used >= int(self.config["daily_quota"]):
                raise SandboxError("607", f"Max daily quota '{self.config['daily_quota']}' reached")
            # In order of arrival, which the lock does not keep: an arrival appended after a
            # later one would otherwise outlive its window behind it and refuse calls it never met.
            bisect.insort(self._window, now)
            self._accepted.append(now)
            self._daily_used += 1
            self._in_flight += 1

    def _route(self, request: Request, path: str) -> Response:
        routes = {
            "/rest/v1/leads/describe.json": ("GET", self._describe),
            "/rest/v1/leads/describe2.json": ("GET", self._describe2),
            "/bulk/v1/leads.json": ("POST", self._bulk_create),
        }
        if path == "/rest/v1/leads.json":
            return self._sync(request) if request.method == "POST" else self._get_leads(request)
        if path == "/rest/v1/lists.json" and request.method == "GET":
            return self._lists_find(request)
        list_leads = _LIST_LEADS_RE.fullmatch(path)
        if list_leads:
            return self._list_leads(request, int(list_leads["id"]), ismember=bool(list_leads["ismember"]))
        if path in routes:
            method, handler = routes[path]
            if request.method != method:
                raise SandboxError("605", "HTTP Method not supported")
            return handler(request)
        if path.startswith("/bulk/v1/leads/batch/") and request.method == "GET":
            return self._bulk_read(path[len("/bulk/v1/leads/batch/"):])
        raise SandboxError("610", "Requested resource not found")

    # --- identity -----------------------------------------------------------------------

    def _identity(self, request: Request) -> Response:
        values = request.values  # query string or form body, GET or POST
        if values.get("grant_type") != "client_credentials":
            return _json({"error": "invalid_request", "error_description": "Missing grant type"}, 400)
        client_id, secret = values.get("client_id", ""), values.get("client_secret", "")
        if client_id != self.config["client_id"]:
            return _json({"error": "unauthorized",
                          "error_description": f"No client with requested id: {client_id}"}, 401)
        if secret != self.config["client_secret"]:
            return _json({"error": "invalid_client", "error_description": "Bad client credentials"}, 401)
        with self._lock:
            now = time.time()
            expires_at = self._tokens.get(self._current_token, 0.0)
            if expires_at <= now:
                self._current_token = f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-{secrets.token_hex(2)}-{secrets.token_hex(2)}-{secrets.token_hex(6)}:ab"
                expires_at = now + float(self.config["token_ttl"])
                self._tokens[self._current_token] = expires_at
                self._tokens_issued += 1
            body = {"access_token": self._current_token, "token_type": "bearer",
                    "expires_in": max(0, int(expires_at - now) - 1),
                    "scope": "cohortsync-api@example.com"}
        response = _json(body)
        response.headers["Cache-Control"] = "no-store"
        return response

    # --- describe -----------------------------------------------------------------------

    def _add_field(self, name: str, display: str, data_type: str, read_only: bool) -> None:
        self._fields[name] = {"id": next(self._field_ids), "name": name, "displayName": display,
                              "dataType": data_type, "readOnly": read_only}

    def _describe(self, request: Request) -> Response:
        with self._lock:
            result = [
                {"id": f["id"], "displayName": f["displayName"], "dataType": f["dataType"],
                 **({"length": 255} if f["dataType"] in ("string", "email") else {}),
                 "rest": {"name": f["name"], "readOnly": f["readOnly"]},
                 "soap": {"name": f["name"][:1].upper() + f["name"][1:], "readOnly": f["readOnly"]}}
                for f in self._fields.values()
            ]
        return _ok(result)

    def _describe2(self, request: Request) -> Response:
        with self._lock:
            fields = [{"name": f["name"], "displayName": f["displayName"], "dataType": f["dataType"],
                       "updateable": not f["readOnly"], "crmManaged": False} for f in self._fields.values()]
        return _ok([{"name": "API Lead", "searchableFields": [["email"], ["id"]], "fields": fields}])

    # --- leads --------------------------------------------------------------------------

    def _get_leads(self, request: Request) -> Response:
        if request.args.get("filterType") != "email":
            raise SandboxError("1003", "Sandbox supports filterType=email only")
        values = [v for v in request.args.get("filterValues", "").split(",") if v.strip()]
        if len(values) > 300:
            raise SandboxError("1003", "At most 300 filter values")
        fields = [f.strip() for f in request.args.get("fields", "").split(",") if f.strip()]
        with self._lock:
            result = []
            for email in values:
                for lead_id in self._by_email.get(email.strip().lower(), []):
                    lead = self._leads[lead_id]
                    # The id always; the fields asked for, or every field.
                    result.append({"id": lead_id, **{f: lead.get(f) for f in fields}} if fields else dict(lead))
        return _ok(result)

    # --- static lists (destinations.sandbox.marketo_lists) --------------------------------

    def _lists_find(self, request: Request) -> Response:
        with self._lock:
            answer = lists_find(self.lists, request)
        return _json({"requestId": _request_id(), "success": True, **answer})

    def _list_leads(self, request: Request, list_id: int, *, ismember: bool) -> Response:
        try:
            with self._lock:
                return _ok(list_leads(self.lists, request, list_id, ismember=ismember, leads=self._leads))
        except ListRequestError as exc:
            raise SandboxError(exc.code, exc.message) from None

    def _sync(self, request: Request) -> Response:
        if "json" not in (request.mimetype or ""):
            raise SandboxError("612", "Invalid Content Type")
        try:
            body = json.loads(request.get_data(as_text=True))
        except ValueError:
            raise SandboxError("609", "Invalid JSON") from None
        if not isinstance(body, dict):
            raise SandboxError("609", "Invalid JSON")
        action = body.get("action", "createOrUpdate")
        if action not in SYNC_ACTIONS:
            raise SandboxError("1003", f"Invalid action '{action}'")
        if body.get("lookupField", "email") != "email":
            raise SandboxError("1003", "Sandbox supports lookupField 'email' only")
        records = body.get("input")
        if not isinstance(records, list) or not records:
            raise SandboxError("701", "'input' cannot be blank")
        if len(records) > int(self.config["max_batch_size"]):
            # Sandbox choice: the real code for an oversized batch is undocumented.
            raise SandboxError("1003", f"Batch size exceeds the limit of {self.config['max_batch_size']} records")
        stamp = _now_iso()
        with self._lock:
            return _ok([self._sync_one(record, action, stamp) for record in records])

    def _sync_one(self, record: Any, action: str, stamp: str) -> dict[str, Any]:
        if not isinstance(record, dict):
            return _skipped("1003", "Invalid data")
        email = record.get("email")
        if not isinstance(email, str) or not email.strip():
            return _skipped("1003", "Value for lookup field 'email' not specified")
        problem = self._row_problem(email, list(record), record)
        if problem:
            return _skipped(*problem)
        ids = self._by_email.get(email.strip().lower(), [])
        if len(ids) > 1 and action != "createDuplicate":
            return _skipped("1007", "Multiple lead match lookup criteria")
        if ids and action == "createOnly":
            return _skipped("1005", "Lead already exists")
        if not ids and action == "updateOnly":
            return _skipped("1004", "Lead not found")
        values = {k: v for k, v in record.items() if k != "email"}
        if ids and action != "createDuplicate":
            self._update_lead(ids[0], values, stamp)
            return {"id": ids[0], "status": "updated"}
        return {"id": self._create_lead(record, stamp), "status": "created"}

    def _row_problem(self, email: str, columns: list[str], values: dict[str, Any]) -> tuple[str, str] | None:
        normalized = email.strip().lower()
        rejected = self.config["reject_emails"].get(normalized)
        if rejected:
            return str(rejected.get("code", "1003")), str(rejected.get("message", "Invalid data"))
        if not normalized.isascii() or "@" not in normalized or " " in normalized:
            return "1003", "Invalid email address"
        for name in columns:
            spec = self._fields.get(name)
            if spec is None:
                return "1006", f"Field '{name}' not found"
            if spec["readOnly"]:
                return "1003", f"Field '{name}' is not updateable"
            if spec["dataType"] == "boolean" and not isinstance(values.get(name), bool):
                # Sandbox choice: the real handling of a non-boolean value is unverified.
                return "1003", f"Invalid value for field '{name}'"
        return None

    def _create_lead(self, values: dict[str, Any], stamp: str | None = None) -> int:
        lead_id = next(self._lead_ids)
        stamp = stamp or _now_iso()
        lead = {"id": lead_id, "email": str(values.get("email", "")).strip()}
        lead.update({k: v for k, v in values.items() if k != "email"})
        lead.update(createdAt=stamp, updatedAt=stamp)
        self._leads[lead_id] = lead
        self._by_email.setdefault(lead["email"].lower(), []).append(lead_id)
        return lead_id

    def _update_lead(self, lead_id: int, values: dict[str, Any], stamp: str | None = None) -> None:
        self._leads[lead_id].update(values, updatedAt=stamp or _now_iso())

    # --- bulk import --------------------------------------------------------------------

    def _bulk_create(self, request: Request) -> Response:
        if request.mimetype != "multipart/form-data" or "file" not in request.files:
            raise SandboxError("613", "Invalid Multipart Request")
        file_format = request.values.get("format", "csv")
        delimiters = {"csv": ",", "tsv": "\t", "ssv": " "}
        if file_format not in delimiters:
            raise SandboxError("1003", f"Invalid format '{file_format}'")
        if request.values.get("lookupField", "email") != "email":
            raise SandboxError("1003", "Sandbox supports lookupField 'email' only")
        content = request.files["file"].read()
        if len(content) > int(self.config["max_bulk_bytes"]):
            return Response("413 Request Entity Too Large", status=413)
        list_id = request.values.get("listId", type=int)
        with self._lock:
            if list_id is not None and not self.lists.exists(list_id):
                # Sandbox choice: the real code for an unknown listId is undocumented.
                raise SandboxError("1013", "Static list not found")
            self._advance_jobs()
            active = sum(1 for job in self._jobs.values() if job.status in ("Queued", "Importing"))
            if active >= int(self.config["bulk_queue_limit"]):
                raise SandboxError("1016", "Too many imports")
            job = BulkJob(next(self._job_ids), content.decode("utf-8", "replace"), delimiters[file_format],
                          list_id=list_id)
            self._jobs[job.batch_id] = job
        return _ok([{"batchId": job.batch_id, "importId": str(job.batch_id), "status": job.status}])

    def _bulk_read(self, rest: str) -> Response:
        job_id, _, kind = rest.partition("/")
        job_id = job_id.removesuffix(".json")
        with self._lock:
            job = self._jobs.get(int(job_id)) if job_id.isdigit() else None
            if job is None:
                raise SandboxError("1013", "Object not found")
            if kind == "":
                self._advance_jobs(polled=job)
                return _ok([job.summary()])
            if kind not in ("failures.json", "warnings.json"):
                raise SandboxError("610", "Requested resource not found")
            is_failures = kind == "failures.json"
            rows = job.failures if is_failures else job.warnings
            reason = "Import Failure Reason" if is_failures else "Import Warning Reason"
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\r\n")
            writer.writerow([*job.header, reason])
            writer.writerows(rows)
        return Response(out.getvalue(), content_type="text/csv;charset=UTF-8")

    def _advance_jobs(self, polled: BulkJob | None = None) -> None:
        step = float(self.config["bulk_step_seconds"])
        now = time.monotonic()
        for job in sorted(self._jobs.values(), key=lambda j: j.batch_id):
            due = job is polled if step <= 0 else now - job.changed_at >= step
            if not due:
                continue
            # Timed steps date from when they were due, not from when someone looked: real
            # imports progress whether or not their status is read.
            moved_at = now if step <= 0 else min(now, job.changed_at + step)
            if job.status == "Queued":
                started_at = self._import_slot_take(due_at=moved_at, step=step, now=now)
                if started_at is None:
                    continue
                job.status, job.changed_at = "Importing", started_at
                if step > 0:
                    # Timed steps import during the step, in the background, as Marketo does:
                    # the rows' processing is part of the step, not of whichever status read
                    # happens to notice that the step is over.
                    self._import(job, background=True)
            elif job.status == "Importing":
                if step <= 0:
                    self._import(job, background=False)
                if job.outcome is None:
                    continue  # still importing its rows
                (job.status, job.message), job.changed_at = job.outcome, moved_at

    def _import_slot_take(self, *, due_at: float, step: float, now: float) -> float | None:
        """When a queued job due at `due_at` starts importing, or None while every one of
        the `bulk_max_importing` slots is busy. Timed steps: a slot is free from the end of
        the step of the job that held it, so a job that waited for one starts then, not
        when it was due."""
        slots = int(self.config["bulk_max_importing"])
        if step <= 0:
            importing = sum(1 for j in self._jobs.values() if j.status == "Importing")
            return due_at if importing < slots else None
        free_at = self._import_slots_free_at
        free_at.extend([float("-inf")] * (slots - len(free_at)))
        free_at.sort()
        if free_at[0] > now:
            return None
        started_at = max(due_at, free_at[0])
        free_at[0] = started_at + step
        return started_at

    def _import(self, job: BulkJob, *, background: bool) -> None:
        rows = list(csv.reader(io.StringIO(job.content), delimiter=job.delimiter))
        job.header = [name.strip() for name in rows[0]] if rows else []
        problem = "" if "email" in job.header else "Lookup field 'email' not found in the file header"
        for name in job.header:
            spec = self._fields.get(name)
            if spec is None:
                problem = problem or f"Field '{name}' not found"
            elif spec["readOnly"]:
                problem = problem or f"Field '{name}' is not updateable"
        if problem:
            job.outcome = ("Failed", f"Import failed: {problem}")
        elif background:
            threading.Thread(target=self._import_rows, args=(job, rows[1:]), daemon=True).start()
        else:
            self._import_rows(job, rows[1:])

    def _import_rows(self, job: BulkJob, rows: list[list[str]], chunk: int = 2000) -> None:
        """Apply the rows, `chunk` at a time under the lock, so other calls are not held up."""
        at = job.header.index("email")
        stamp = _now_iso()
        for start in range(0, len(rows), chunk):
            with self._lock:
                for row in rows[start:start + chunk]:
                    self._import_row(job, row, at, stamp)
        job.outcome = ("Complete", (
            f"Import succeeded, {job.processed} records imported ({job.processed} members)"
            if not job.failures else
            f"Import completed with errors, {job.processed} records imported ({job.processed} "
            f"members), {len(job.failures)} failed"
        ))

    def _import_row(self, job: BulkJob, row: list[str], at: int, stamp: str) -> None:
        if not any(cell.strip() for cell in row):
            return
        values, failure = self._bulk_values(job.header, row)
        email = row[at].strip() if len(row) > at else ""
        failure = failure or (self._row_problem(email, [], {}) or ("", ""))[1]
        if failure:
            job.failures.append([*row, failure])
            return
        ids = self._by_email.get(email.lower(), [])
        if len(ids) > 1:
            # Sandbox choice: which duplicate the real import updates is undocumented.
            job.warnings.append([*row, "Multiple leads match the lookup criteria; updated the newest"])
        if ids:
            lead_id = ids[-1]
            self._update_lead(lead_id, values, stamp)
        else:
            lead_id = self._create_lead({"email": email, **values}, stamp)
        if job.list_id is not None:
            self.lists.members(job.list_id).add(lead_id)
        job.processed += 1

    def _bulk_values(self, header: list[str], row: list[str]) -> tuple[dict[str, Any], str]:
        values: dict[str, Any] = {}
        for name, cell in zip(header, row, strict=False):
            if name == "email":
                continue
            spec = self._fields[name]
            if spec["dataType"] == "boolean":
                # Sandbox choice: only true/false are accepted (other spellings are unverified).
                if cell.strip().lower() not in ("true", "false"):
                    return {}, f"Invalid data type in field {spec['displayName']}"
                values[name] = cell.strip().lower() == "true"
            else:
                values[name] = cell
        return values, ""

    # --- inspection ---------------------------------------------------------------------

    def _inspection(self, request: Request, path: str) -> Response:
        if path == "/_sandbox/state" and request.method == "GET":
            limit = request.args.get("limit", type=int)
            return _json(self.state(limit))
        if path == "/_sandbox/arrivals" and request.method == "GET":
            return _json({"arrivals": self.accepted_arrivals()})
        if path == "/_sandbox/reset" and request.method == "POST":
            self.reset()
            return _json({"ok": True})
        if path == "/_sandbox/config" and request.method == "POST":
            try:
                knobs = json.loads(request.get_data(as_text=True) or "{}")
                if not isinstance(knobs, dict):
                    raise ValueError("The sandbox config must be a JSON object.")
                self.configure(**knobs)
            except (ValueError, KeyError, TypeError) as exc:
                return _json({"ok": False, "error": str(exc)}, 400)
            return _json({"ok": True, "config": self.config})
        return _json({"ok": False, "error": "Unknown sandbox endpoint."}, 404)

    @staticmethod
    def _today() -> dt.date:
        return dt.datetime.now(_QUOTA_ZONE).date()


def _request_id() -> str:
    return f"{secrets.token_hex(2)}#{int(time.time() * 1000):x}"


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json;charset=UTF-8")


def _ok(result: list[Any]) -> Response:
    return _json({"requestId": _request_id(), "success": True, "result": result})


def _envelope_error(exc: SandboxError) -> Response:
    return _json({"requestId": _request_id(), "success": False,
                  "errors": [{"code": exc.code, "message": exc.message}]})


def _skipped(code: str, message: str) -> dict[str, Any]:
    return {"status": "skipped", "reasons": [{"code": code, "message": message}]}


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
