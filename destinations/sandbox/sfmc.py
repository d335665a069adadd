"""An in-memory Salesforce Marketing Cloud emulator (WSGI), mounted under /sfmc.

It follows the fake-server checklist of reference/sfmc-api.md §11 so the production client
cannot tell it from SFMC: token endpoint (JSON or form bodies), 401 "Not Authorized" on
every REST route without a valid token, data extensions (case-insensitive columns, unknown
columns ignored, non-atomic rowsets, async upserts with a status lifecycle and ordered
results), contact attribute sets, throttling with SFMC's three 429 shapes, and fault
injection. Timestamps are SFMC server time: UTC-6, written without an offset.

Python: reset(), state(limit), configure(**knobs), add_data_extension(), add_attribute(),
rows(key). HTTP (no token needed): GET /_sandbox/state[?limit=N], POST /_sandbox/reset,
POST /_sandbox/config with a JSON object of configure() knobs. Besides DEFAULTS' knobs,
`answers` gives chosen requests a canned status, content type and body (see
destinations.sandbox.canned).
"""

from __future__ import annotations

import bisect
import json
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from werkzeug.wrappers import Request, Response

from destinations.sandbox.canned import CannedAnswers
from destinations.sandbox.latency import answer_after
from destinations.sandbox.sfmc_store import (
    DEADLOCK_MESSAGE,
    DataExtension,
    RequestError,
    RowError,
    coerce,
)

SERVER_TZ = timezone(timedelta(hours=-6))
DOC_URL = "https://developer.salesforce.com/docs/atlas.en-us.mc-apis.meta/mc-apis/error-handling.htm"
DEMO_KEY = "CohortSync_Demo"
DEFAULTS: dict[str, Any] = {
    "client_id": "sandbox-client-id",
    "client_secret": "sandbox-client-secret",
    "expires_in": 1079,
    "token_ttl_seconds": 1200.0,
    "token_throttled": False,  # the token endpoint answers 429/50200
    "requests_per_second": None,
    "max_concurrent_requests": None,
    "throttle_style": "50100",  # 50100 (Retry-After), 50200 (no header) or "text"
    "retry_after": 5,
    "fail_next": 0,  # the next N API requests get HTTP 500
    "throttle_next": 0,  # the next N API requests get HTTP 429 in throttle_style
    "latency_seconds": 0.0,
    "latency_jitter": 0.0,  # see destinations.sandbox.latency
    # The async endpoints' own latency (None: latency_seconds): SFMC's async API is slow
    # per request and fast per row, its token and schema reads are not.
    "async_latency_seconds": None,
    "reject_identities": {},  # identity -> SFMC error message for that row / contact
    "deadlock_identities": [],  # async rows that fail once with "Rerun the transaction."
    "insufficient_privileges": False,  # REST routes answer 403/20002
    "async_not_found_polls": 1,
    "async_pending_polls": 1,
    "async_request_error": False,
    "results_page_size": 50,
    "field_add_delay_reads": 1,  # reads of /fields before an added column shows up
    "max_payload_bytes": 5_000_000,
    "async_max_items": 32_000,
    "definitions_page_size": 50,
    "definitions_include_attributes": True,
}
SEED_ATTRIBUTE_SETS = {
    "Email Addresses": [("Email Address", "EmailAddress"), ("HTML Enabled", "Boolean")],
    "Email Demographics": [("First Name", "Text"), ("Last Name", "Text"), ("Cohort_Demo", "Text")],
    "MobileConnect Demographics": [("Mobile Number", "Phone"), ("Locale", "Locale")],
}


class _Reply(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json", headers=dict(headers or {}))


def _envelope(status: int, message: str, code: int, additional: list[str] | None = None) -> Response:
    body: dict[str, Any] = {"message": message, "errorcode": code, "documentation": ""}
    if additional is not None:
        body["additionalErrors"] = [{"message": m, "errorcode": 10000, "documentation": ""} for m in additional]
    return _json(status, body)


def _server_time(offset_seconds: float = 0.0) -> str:
    now = datetime.now(UTC).astimezone(SERVER_TZ) + timedelta(seconds=offset_seconds)
    return now.replace(tzinfo=None).isoformat(timespec="milliseconds")


class SfmcSandbox:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.reset()

    # --- Python API ------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.config: dict[str, Any] = json.loads(json.dumps(DEFAULTS))
            self.tokens: dict[str, float] = {}
            self.data_extensions: dict[str, DataExtension] = {}
            self.jobs: dict[str, dict[str, Any]] = {}
            self.attribute_sets: dict[str, dict[str, Any]] = {}
            self.contacts: dict[str, dict[str, dict[str, Any]]] = {}
            # `refused`: calls answered 429 because the tenant's rate or concurrency was exceeded.
            self.calls: dict[str, Any] = {"total": 0, "by_endpoint": {}, "tokens_issued": 0, "refused": 0}
            self.rowset_sizes: list[int] = []
            self.canned = CannedAnswers()
            self._recent: deque[float] = deque()
            self._in_flight = 0
            self.add_data_extension(DEMO_KEY, [
                {"name": "SubscriberKey", "type": "Text", "isPrimaryKey": True, "length": 254},
                {"name": "Email", "type": "EmailAddress", "isNullable": True},
                {"name": "In_Demo_Cohort", "type": "Boolean"},
            ], name="CohortSync Demo")
            for set_name, attributes in SEED_ATTRIBUTE_SETS.items():
                for attribute, kind in attributes:
                    self.add_attribute(attribute, attribute_set=set_name, data_type=kind)

    def configure(self, **knobs: Any) -> dict[str, Any]:
        """Change limits and faults; `expire_tokens=True` invalidates every issued token,
        `answers=[...]` replaces the canned answers (destinations.sandbox.canned),
        `attributes=[{"name", "attribute_set", "data_type"}]` adds contact attributes."""
        with self._lock:
            if knobs.pop("expire_tokens", False):
                self.tokens.clear()
            if "answers" in knobs:
                self.canned.replace(knobs.pop("answers"))
            for attribute in knobs.pop("attributes", None) or []:
                self.add_attribute(str(attribute["name"]),
                                   attribute_set=str(attribute.get("attribute_set", "Email Demographics")),
                                   data_type=str(attribute.get("data_type", "Text")))
            unknown = sorted(set(knobs) - set(DEFAULTS))
            if unknown:
                raise ValueError(f"Unknown sandbox setting(s): {', '.join(unknown)}.")
            self.config.update(knobs)
            return dict(self.config)

    def add_data_extension(
        self, key: str, fields: list[Mapping[str, Any]], *, name: str | None = None
    ) -> dict[str, Any]:
        with self._lock:
            de = DataExtension(key, name or key, fields)
            self.data_extensions[key.lower()] = de
            return {"id": de.id, "key": de.key}

    def add_attribute(self, name: str, *, attribute_set: str = "Email Demographics", data_type: str = "Text") -> None:
        with self._lock:
            entry = self.attribute_sets.setdefault(attribute_set.lower(), {
                "id": str(uuid.uuid4()), "key": attribute_set.replace(" ", ""),
                "name": {"value": attribute_set}, "fullyQualifiedName": attribute_set,
                "storageLogicalType": "ExtendedAttributeSet", "attributes": [],
            })
            entry["attributes"].append({
                "id": str(uuid.uuid4()), "key": name.replace(" ", ""), "name": {"value": name},
                "valueDefinition": {"dataType": data_type, "length": 4000}, "isReadOnly": False,
            })

    def rows(self, key: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(row) for row in self.data_extensions[key.lower()].rows.values()]

    def state(self, limit: int | None = None) -> dict[str, Any]:
        with self._lock:
            return {
                "data_extensions": {
                    de.key: {
                        "id": de.id, "name": de.name, "fields": [dict(f) for f in de.fields],
                        "row_count": len(de.rows),
                        "rows": [dict(r) for _, r in zip(range(limit if limit is not None else len(de.rows)),
                                                         de.rows.values(), strict=False)],
                    }
                    for de in self.data_extensions.values()
                },
                "attribute_sets": [
                    {"id": s["id"], "name": s["name"]["value"],
                     "attributes": [a["name"]["value"] for a in s["attributes"]]}
                    for s in self.attribute_sets.values()
                ],
                "contacts": {k: v for _, (k, v) in zip(range(limit if limit is not None else len(self.contacts)),
                                                       self.contacts.items(), strict=False)},
                "async_requests": len(self.jobs),
                "calls": {**self.calls, "by_endpoint": dict(self.calls["by_endpoint"]),
                          "max_rowset_rows": max(self.rowset_sizes, default=0)},
            }

    # --- WSGI ------------------------------------------------------------------------------

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        request = Request(environ)
        try:
            if request.path.startswith("/_sandbox/"):
                response = self._inspection(request)
            else:
                response = self._api(request)
        except _Reply as reply:
            response = reply.response
        return response(environ, start_response)

    def _inspection(self, request: Request) -> Response:
        action = request.path[len("/_sandbox/"):].strip("/")
        if action == "state" and request.method == "GET":
            limit = request.args.get("limit", type=int)
            return _json(200, self.state(limit if limit is not None else 1000))
        if action == "reset" and request.method == "POST":
            self.reset()
            return _json(200, {"ok": True})
        if action == "config" and request.method == "POST":
            knobs = request.get_json(silent=True)
            if not isinstance(knobs, dict):
                return _json(400, {"error": "Send a JSON object of settings."})
            try:
                return _json(200, self.configure(**knobs))
            except (TypeError, ValueError) as exc:
                return _json(400, {"error": str(exc)})
        return _json(404, {"error": "Unknown sandbox route."})

    def _api(self, request: Request) -> Response:
        # A request counts against the rate from when it arrived, not from when a lock held
        # by other requests' processing let it through, as at a real API's edge.
        arrived = time.monotonic()
        handler, params, label = self._route(request)
        with self._lock:
            self.calls["total"] += 1
            self.calls["by_endpoint"][label] = self.calls["by_endpoint"].get(label, 0) + 1
            canned = self.canned.take(request)
            if canned is not None:
                return canned
            fault = self._fault(arrived)
            if fault is not None:
                return fault
            self._in_flight += 1
        try:
            with self._lock:
                if label != "POST /v2/token":
                    self._authorize(request)
                response = handler(request, **params)
            latency = self.config["latency_seconds"]
            if " /data/v1/async/" in label and self.config["async_latency_seconds"] is not None:
                latency = self.config["async_latency_seconds"]
            answer_after(arrived, float(latency), float(self.config["latency_jitter"]))
            return response
        finally:
            with self._lock:
                self._in_flight -= 1

    def _route(self, request: Request) -> tuple[Any, dict[str, str], str]:
        path = request.path
        for methods, pattern, name, label in _ROUTES:
            match = pattern.fullmatch(path)
            if match:
                if request.method not in methods:
                    raise _Reply(_envelope(405, f"Method {request.method} is not allowed here.", 10000))
                return getattr(self, name), match.groupdict(), label
        raise _Reply(_envelope(404, f"Resource {path} was not found.", 10000))

    def _fault(self, now: float) -> Response | None:
        config = self.config
        if config["fail_next"] > 0:
            config["fail_next"] -= 1
            return _envelope(500, "An internal server error occurred.", 0)
        if config["throttle_next"] > 0:
            config["throttle_next"] -= 1
            return self._throttled(config["throttle_style"])
        while self._recent and now - self._recent[0] >= 1.0:
            self._recent.popleft()
        limit, concurrent = config["requests_per_second"], config["max_concurrent_requests"]
        if (limit and len(self._recent) >= limit) or (concurrent and self._in_flight >= concurrent):
            self.calls["refused"] += 1
            return self._throttled(config["throttle_style"])
        # In order of arrival, which the lock does not keep: an arrival appended after a later
        # one would otherwise outlive its second behind it and refuse calls it never met.
        bisect.insort(self._recent, now)
        return None

    def _throttled(self, style: str) -> Response:
        if str(style) == "text":
            return Response("Too Many Requests", status=429, mimetype="text/plain")
        if str(style) == "50200":
            return _json(429, {"message": "Your requests are temporarily blocked.", "errorcode": 50200,
                               "documentation": DOC_URL})
        seconds = self.config["retry_after"]
        return _json(429, {"message": "Rate limit exceeded", "errorcode": 50100, "retryAfter": seconds,
                           "documentation": DOC_URL}, {"Retry-After": str(seconds)})

    def _authorize(self, request: Request) -> None:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        expires = self.tokens.get(token)
        if not token or expires is None or expires <= time.monotonic():
            raise _Reply(_json(401, {"message": "Not Authorized", "errorcode": 0, "documentation": DOC_URL}))
        if self.config["insufficient_privileges"]:
            raise _Reply(_envelope(403, "Insufficient privileges to complete this action.", 20002))

    # --- token -----------------------------------------------------------------------------

    def _token(self, request: Request) -> Response:
        if self.config["token_throttled"]:
            return self._throttled("50200")
        if request.mimetype == "application/x-www-form-urlencoded":
            body: Any = request.form.to_dict()
        else:
            body = request.get_json(silent=True, force=True)
        if not isinstance(body, dict):
            return _json(400, {"error": "invalid_request", "error_description": "The request body is not valid."})
        if body.get("grant_type") != "client_credentials":
            return _json(400, {"error": "unsupported_grant_type",
                               "error_description": 'Use "client_credentials" as the grant_type.'})
        if body.get("client_id") != self.config["client_id"] or body.get("client_secret") != self.config["client_secret"]:
            return _json(401, {"error": "invalid_client",
                               "error_description": "Invalid client ID. Use the client ID in Marketing Cloud Installed Packages.",
                               "error_uri": "https://developer.salesforce.com/docs"})
        token = secrets.token_urlsafe(48)
        self.tokens[token] = time.monotonic() + float(self.config["token_ttl_seconds"])
        self.calls["tokens_issued"] += 1
        root = f"{request.host_url.rstrip('/')}{request.script_root}"
        return _json(200, {
            "access_token": token, "token_type": "Bearer", "expires_in": self.config["expires_in"],
            "scope": "data_extensions_read data_extensions_write list_and_subscribers_read "
                     "list_and_subscribers_write audiences_read audiences_write",
            "soap_instance_url": f"{root}/soap/", "rest_instance_url": f"{root}/rest/",
        })

    # --- data extensions -------------------------------------------------------------------

    def _de(self, target: str, *, missing: str = "404") -> DataExtension:
        if target.lower().startswith("key:"):
            de = self.data_extensions.get(target[4:].lower())
        else:
            try:
                uuid.UUID(target)
            except ValueError:
                raise _Reply(_envelope(400, f"Parameter {target} is invalid.", 10001)) from None
            de = next((d for d in self.data_extensions.values() if d.id == target.lower()), None)
        if de is None:
            if missing == "async":
                raise _Reply(_json(400, {"requestId": str(uuid.uuid4()), "resultMessages": [{
                    "resultType": "Validation", "resultClass": "Error", "resultCode": "CustomObjectNotFound",
                    "message": f"Failed to resolve the Custom Object {target}."}]}))
            raise _Reply(_envelope(404, f"Data extension {target} was not found.", 10000))
        return de

    def _key_rowset(self, request: Request, key: str) -> Response:
        de = self._de(f"key:{key}")
        size = max(1, request.args.get("$pageSize", default=50, type=int) or 50)
        items = [{"keys": {f["name"].lower(): r.get(f["name"]) for f in de.primary_keys},
                  "values": {k.lower(): v for k, v in r.items()}} for _, r in zip(range(size), de.rows.values(), strict=False)]
        return _json(200, {"customObjectId": de.id, "customObjectKey": de.key, "pageSize": size,
                           "page": 1, "count": len(de.rows), "items": items})

    def _fields(self, request: Request, id: str) -> Response:  # noqa: A002
        de = self._de(id)
        for entry in list(de.pending):
            entry[1] -= 1
            if entry[1] < 0:
                de.pending.remove(entry)
                de.add_field(entry[0])
        return _json(200, {"id": de.id, "fields": [dict(f) for f in de.fields]})

    def _add_fields(self, request: Request, id: str) -> Response:  # noqa: A002
        de = self._de(id)
        body = request.get_json(silent=True, force=True)
        specs = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(specs, list) or not specs:
            return _envelope(400, "The fields property is required.", 10002)
        for spec in specs:
            if not isinstance(spec, dict) or not spec.get("name"):
                return _envelope(400, "Each field needs a name.", 10002)
            if de.field(spec["name"]) or any(p[0]["name"].lower() == str(spec["name"]).lower() for p in de.pending):
                return _envelope(400, f"A field named {spec['name']} already exists.", 10005)
            if spec.get("type", "Text") not in ("Text", "Number", "Date", "Boolean", "EmailAddress",
                                                 "Phone", "Decimal", "Locale"):
                return _envelope(400, f"Field type {spec.get('type')} is invalid.", 10005)
            de.pending.append([{**spec, "isPrimaryKey": False}, int(self.config["field_add_delay_reads"])])
        return _json(202, {"id": de.id, "requestId": str(uuid.uuid4()), "resultMessages": []})

    def _check_size(self, request: Request) -> None:
        if (request.content_length or 0) > int(self.config["max_payload_bytes"]):
            raise _Reply(_envelope(413, "The request is larger than the allowed 5 MB.", 10000))

    def _rowset(self, request: Request, target: str) -> Response:
        de = self._de(target)
        self._check_size(request)
        body = request.get_json(silent=True, force=True)
        if not isinstance(body, list):
            return _envelope(400, "Invalid message format: the body must be an array of rows.", 10004)
        self.rowset_sizes.append(len(body))
        for row in body:
            if not isinstance(row, dict) or not isinstance(row.get("keys"), dict) or not isinstance(row.get("values"), dict):
                return _envelope(400, "Each row needs a keys object and a values object.", 10004)
            try:
                de.write_row(row["values"], rejected=self.config["reject_identities"], keys=row["keys"])
            except RequestError as exc:
                return _envelope(400, str(exc), 10000)
            except RowError as exc:
                # Rows before this one stay saved; this one and every later one are rejected.
                return _envelope(400, f"Unable to save rows for data extension ID {de.id}", 10006, [str(exc)])
        return _json(200, body)

    def _single_row(self, request: Request, target: str, pk: str) -> Response:
        de = self._de(target)
        body = request.get_json(silent=True, force=True)
        keys = dict(part.split(":", 1) for part in pk.split(",") if ":" in part)
        if not isinstance(body, dict) or not isinstance(body.get("values"), dict) or not keys:
            return _envelope(400, "Invalid message format.", 10004)
        try:
            de.write_row(body["values"], rejected=self.config["reject_identities"], keys=keys)
        except RequestError as exc:
            return _envelope(400, str(exc), 10000)
        except RowError as exc:
            return _envelope(400, f"Unable to save rows for data extension ID {de.id}", 10006, [str(exc)])
        return _json(200, {"keys": keys, "values": body["values"]})

    def _async_submit(self, request: Request, target: str) -> Response:
        de = self._de(target, missing="async")
        self._check_size(request)
        body = request.get_json(silent=True, force=True)
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list) or any(not isinstance(i, dict) or "keys" in i for i in items):
            return _envelope(400, "Unable to deserialize the request: send {\"items\": [flat rows]}.", 10004)
        if len(items) > int(self.config["async_max_items"]):
            return _envelope(400, f"The request has {len(items)} items; at most "
                             f"{self.config['async_max_items']} are allowed.", 10005)
        results = []
        deadlocks = self.config["deadlock_identities"]
        for item in items:
            try:
                identity = str(next((v for k, v in item.items() if de.field(k) is not None
                                     and de.field(k)["isPrimaryKey"]), ""))  # type: ignore[index]
                if identity in deadlocks:
                    deadlocks.remove(identity)
                    raise RowError(DEADLOCK_MESSAGE)
                de.write_row(item, rejected=self.config["reject_identities"], insert_only=request.method == "POST")
                results.append({"status": "OK", "message": "Upserted DataExtensionObject"})
            except (RowError, RequestError) as exc:
                column = de.primary_keys[0]["name"].lower() if de.primary_keys else ""
                results.append({"status": "Error", "errorCode": "UnexpectedError", "message": str(exc),
                                "errors": [{"name": column, "errorMessage": str(exc), "errorCode": 70001}]})
        request_id = str(uuid.uuid4())
        self.jobs[request_id] = {"results": results, "polls": 0, "called": _server_time(),
                                 "error": bool(self.config["async_request_error"])}
        return _json(202, {"requestId": request_id, "resultMessages": []})

    def _async_status(self, request: Request, rid: str) -> Response:
        job = self.jobs.get(rid)
        if job is not None:
            job["polls"] += 1
        not_found, pending = int(self.config["async_not_found_polls"]), int(self.config["async_pending_polls"])
        if job is None or job["polls"] <= not_found:
            return _json(200, {"requestId": str(uuid.uuid4()), "resultMessages": [{
                "resultType": "Operational", "resultClass": "Error", "resultCode": "AsyncRequestStatusNotFound",
                "message": f"Unable to locate an Async Request Status Record for the provided RequestId: {rid}"}]})
        has_errors = any(r["status"] != "OK" for r in job["results"])
        if job["polls"] <= not_found + pending:
            state = "Pending" if (job["polls"] - not_found) % 2 else "Executing"
            status = {"requestStatus": state, "resultStatus": "", "hasErrors": False}
        else:
            status = {"requestStatus": "Error" if job["error"] else "Complete",
                      "resultStatus": "Has Errors" if has_errors else "OK", "hasErrors": has_errors,
                      "completionDateTime": _server_time()}
        status.update({"callDateTime": job["called"], "pickupDateTime": job["called"], "requestId": rid})
        return _json(200, {"status": status, "requestId": str(uuid.uuid4())})

    def _async_results(self, request: Request, rid: str) -> Response:
        job = self.jobs.get(rid)
        if job is None:
            return _json(200, {"requestId": rid, "items": [], "resultMessages": [{
                "resultType": "Operational", "resultClass": "Error", "resultCode": "AsyncRequestNotFound",
                "message": "Unable to locate results for the provided RequestId."}]})
        cap = int(self.config["results_page_size"])
        size = min(cap, max(1, request.args.get("$pageSize", default=cap, type=int) or cap))
        page = max(1, request.args.get("$page", default=1, type=int) or 1)
        items = job["results"][(page - 1) * size: page * size]
        return _json(200, {"page": page, "pageSize": size, "count": len(job["results"]), "requestId": rid,
                           "resultMessages": [], "items": items})

    # --- contacts --------------------------------------------------------------------------

    def _definitions(self, request: Request) -> Response:
        cap = int(self.config["definitions_page_size"])
        size = min(cap, max(1, request.args.get("$pageSize", default=cap, type=int) or cap))
        page = max(1, request.args.get("$page", default=1, type=int) or 1)
        sets = list(self.attribute_sets.values())
        items = []
        for entry in sets[(page - 1) * size: page * size]:
            item = json.loads(json.dumps(entry))
            if not self.config["definitions_include_attributes"]:
                item.pop("attributes")
            items.append(item)
        return _json(200, {"page": page, "pageSize": size, "count": len(sets), "items": items})

    def _definition(self, request: Request, id: str) -> Response:  # noqa: A002
        entry = next((s for s in self.attribute_sets.values() if s["id"] == id), None)
        if entry is None:
            return _envelope(404, f"Attribute set definition {id} was not found.", 10000)
        return _json(200, entry)

    def _contacts(self, request: Request) -> Response:
        body = request.get_json(silent=True, force=True)
        key = body.get("contactKey") if isinstance(body, dict) else None
        if not key:
            return _envelope(400, "contactKey or contactID is required.", 10002)
        key = str(key)
        updates: dict[str, dict[str, Any]] = {}
        try:
            if len(key) > 254 or ":" in key:
                raise RowError(f"ContactKey '{key[:40]}' is not valid: at most 254 characters and no ':'.")
            if key in self.config["reject_identities"]:
                raise RowError(str(self.config["reject_identities"][key] or "The contact was rejected."))
            for attribute_set in body.get("attributeSets") or []:
                set_name = str(attribute_set.get("name", ""))
                definition = self.attribute_sets.get(set_name.lower())
                if definition is None:
                    raise RowError(f"Attribute set '{set_name}' was not found.")
                for item in attribute_set.get("items") or []:
                    for value in item.get("values") or []:
                        name = str(value.get("name", ""))
                        attribute = next((a for a in definition["attributes"]
                                          if a["name"]["value"].lower() == name.lower()), None)
                        if attribute is None:
                            raise RowError(f"Attribute '{name}' was not found in attribute set '{set_name}'.")
                        spec = {"name": name, "type": attribute["valueDefinition"]["dataType"], "isNullable": True}
                        updates.setdefault(definition["name"]["value"], {})[attribute["name"]["value"]] = (
                            coerce(spec, value.get("value"))
                        )
        except RowError as exc:
            return _json(200, {"operationStatus": "FAIL", "rowsAffected": 0, "contactKey": key, "hasErrors": True,
                               "resultMessages": [{"resultType": "Validation", "resultClass": "Error",
                                                   "resultCode": "ValidationFailed", "message": str(exc)}],
                               "responseDateTime": _server_time(), "serviceMessageID": str(uuid.uuid4())})
        is_new = key not in self.contacts
        contact = self.contacts.setdefault(key, {})
        for set_name, values in updates.items():
            contact.setdefault(set_name, {}).update(values)
        return _json(200, {"operationStatus": "OK", "rowsAffected": 1, "contactKey": key,
                           "contactId": abs(hash(key)) % 10**9, "contactTypeID": 0,
                           "isNewContactKey": is_new, "requestServiceMessageID": str(uuid.uuid4()),
                           "responseDateTime": _server_time(), "hasErrors": False, "resultMessages": [],
                           "serviceMessageID": str(uuid.uuid4())})


_ROUTES = [
    ({"POST"}, re.compile(r"/auth/v2/token"), "_token", "POST /v2/token"),
    ({"GET"}, re.compile(r"/rest/data/v1/customobjectdata/key/(?P<key>[^/]+)/rowset"), "_key_rowset",
     "GET /data/v1/customobjectdata/key/{key}/rowset"),
    ({"GET"}, re.compile(r"/rest/data/v1/customobjects/(?P<id>[^/]+)/fields"), "_fields",
     "GET /data/v1/customobjects/{id}/fields"),
    ({"POST"}, re.compile(r"/rest/data/v1/customobjectsasync/(?P<id>[^/]+)/fields"), "_add_fields",
     "POST /data/v1/customobjectsasync/{id}/fields"),
    ({"POST"}, re.compile(r"/rest/hub/v1/dataevents/(?P<target>[^/]+)/rowset"), "_rowset",
     "POST /hub/v1/dataevents/{key}/rowset"),
    ({"PUT"}, re.compile(r"/rest/hub/v1/dataevents/(?P<target>[^/]+)/rows/(?P<pk>.+)"), "_single_row",
     "PUT /hub/v1/dataevents/{key}/rows/{pk}"),
    ({"PUT", "POST"}, re.compile(r"/rest/data/v1/async/dataextensions/(?P<target>[^/]+)/rows"),
     "_async_submit", "PUT /data/v1/async/dataextensions/{key}/rows"),
    ({"GET"}, re.compile(r"/rest/data/v1/async/(?P<rid>[^/]+)/status"), "_async_status",
     "GET /data/v1/async/{id}/status"),
    ({"GET"}, re.compile(r"/rest/data/v1/async/(?P<rid>[^/]+)/results"), "_async_results",
     "GET /data/v1/async/{id}/results"),
    ({"GET"}, re.compile(r"/rest/contacts/v1/attributeSetDefinitions"), "_definitions",
     "GET /contacts/v1/attributeSetDefinitions"),
    ({"GET"}, re.compile(r"/rest/contacts/v1/attributeSetDefinitions/(?P<id>[^/]+)"), "_definition",
     "GET /contacts/v1/attributeSetDefinitions/{id}"),
    ({"PATCH", "POST"}, re.compile(r"/rest/contacts/v1/contacts"), "_contacts", "PATCH /contacts/v1/contacts"),
]
