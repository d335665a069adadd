"""The only module that speaks HTTP to Marketo (identity, lead database and bulk import).

Marketo answers almost everything with HTTP 200 and puts the real outcome in an envelope
({"success": false, "errors": [{"code": "606", ...}]}), so every response goes through
`_check_envelope`, which turns codes into the typed errors of destinations.errors; the
shared HttpTransport then retries the transient ones. Tokens are sent only in the
Authorization header, never in a URL.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings

from destinations import scrubbing
from destinations.answers import Answer
from destinations.budget import BudgetLimits, DailyQuotaReached, account_budget
from destinations.errors import (
    AuthenticationError,
    ConfigurationError,
    DestinationError,
    PermanentError,
    QuotaExhaustedError,
    RateLimitedError,
    TargetValidationError,
    TransientError,
)
from destinations.http import AccessToken, HttpTransport, TokenCache, TokenExpiredError
from destinations.marketo import messages
from destinations.marketo.settings import (
    marketo_account_key,
    normalize_marketo_base_url,
    quota_day,
    quota_resets_at,
    quota_zone,
)
from destinations.validation import SettingError

logger = logging.getLogger(__name__)

RATE_WINDOW_SECONDS = 20.0
# Marketo's own sync timeout is 90 s; wait a little longer than that before giving up.
MIN_READ_TIMEOUT_SECONDS = 100.0
# A 606 while our own limiter keeps the window is Marketo counting a call a little earlier
# or later than we did (or another integration sharing the budget): waiting a quarter of
# the window and trying again clears the first at once, and the transport's retries still
# span a whole window for the second. (A full 20 s per refusal idled a slot for 20 s.)
RATE_LIMIT_WAIT_SECONDS = RATE_WINDOW_SECONDS / 4
IMPORT_QUEUE_WAIT_SECONDS = 30.0
_OAUTH_ERROR = re.compile(r"[a-z_]{1,40}")
IMPORT_STATES = frozenset({"Queued", "Importing", "Complete", "Failed"})
# Ends the message of an unexpected answer to a write: what becomes of the users.
NOT_WRITTEN = (
    "These leads are not acknowledged and are sent again by the next run. If this keeps "
    "happening, check the base URL: something other than Marketo's REST API (a proxy?) answers."
)


class ImportQueueFullError(RateLimitedError):
    """Marketo's bulk import queue (10 jobs per instance, shared) is full (1016)."""

    default_code = "import_queue_full"


def _quota_resets_text(resets: dt.datetime) -> str:
    """"midnight America/Chicago, 2026-12-02 00:00 CST (2026-12-02 06:00 UTC)"."""
    local = resets.astimezone(quota_zone())
    return f"midnight America/Chicago, {local:%Y-%m-%d %H:%M %Z} ({resets:%Y-%m-%d %H:%M} UTC)"


def _quota_error(marketo_message: str, now: dt.datetime) -> QuotaExhaustedError:
    resets = quota_resets_at(now)
    said = f' Marketo said: "{marketo_message}".' if marketo_message else ""
    return QuotaExhaustedError(
        "Marketo's daily API quota for this instance is used up (607). The run stops here and "
        f"can resume after the quota resets at {_quota_resets_text(resets)}. The quota is shared "
        f"by every integration on the instance; ask Adobe to raise it if this happens often.{said}",
        code=messages.QUOTA_CODE,
        resumes_at=resets.isoformat(),
    )


def _budget_quota_error(reached: DailyQuotaReached) -> QuotaExhaustedError:
    """The run stops before the call that would cross daily_call_quota (nothing was sent)."""
    return QuotaExhaustedError(
        f"This Marketo instance's daily API budget of {reached.quota} calls (daily_call_quota) is "
        f"used up: {reached.used} calls were counted today, by every CohortSync worker. The run "
        "stops before the call that would cross it and can resume after the quota resets at "
        f"{_quota_resets_text(reached.resets_at)}. Raise daily_call_quota in the destination "
        "options if Adobe raised the instance's quota.",
        resumes_at=reached.resets_at.isoformat(),
    )


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class MarketoClient:
    """Marketo REST client for one instance and one API service (thread-safe)."""

    def __init__(
        self,
        *,
        base_url: str,
        client_id: str,
        client_secret: str,
        calls_per_20s: int = 50,
        max_concurrency: int = 5,
        daily_call_quota: int = 50_000,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] | None = None,
        token_cache: TokenCache | None = None,
    ) -> None:
        try:
            self.base_url = normalize_marketo_base_url(base_url)
        except SettingError as exc:
            raise ConfigurationError(str(exc), code="bad_base_url") from None
        if not client_id or not client_secret:
            raise ConfigurationError(
                "The Marketo destination needs a client id and a client secret (Admin > "
                "LaunchPoint > your API service > View Details).",
                code="missing_credentials",
            )
        self._client_id = client_id
        self._client_secret = client_secret
        scrubbing.secret_remember(client_secret)
        self._now = now or _utcnow
        read_timeout = max(settings.COHORTSYNC_HTTP_TIMEOUT_SECONDS, MIN_READ_TIMEOUT_SECONDS)
        # The instance's budget, shared by every worker and host (destinations.budget). An
        # injected clock or sleep (tests) is its own timeline: it must not share, or wait
        # on, the real-time budget.
        injected = not (clock is time.monotonic and sleep is time.sleep)
        self.budget = account_budget(
            key=marketo_account_key({"base_url": self.base_url}),
            limits=BudgetLimits(
                window_calls=int(calls_per_20s), window_seconds=RATE_WINDOW_SECONDS,
                max_concurrency=int(max_concurrency), daily_quota=int(daily_call_quota),
            ),
            quota_day=quota_day,
            now=self._now,
            clock=clock if injected else None,
            sleep=sleep if injected else None,
        )
        self.transport = HttpTransport(budget=self.budget, read_timeout=read_timeout, sleep=sleep)
        self._tokens = token_cache or TokenCache(namespace="marketo")
        self._token_key = self._tokens.key(self.base_url, client_id, client_secret)
        self._token_lock = threading.Lock()

    @property
    def api_calls(self) -> int:
        return self.transport.api_calls

    # --- identity -----------------------------------------------------------------------

    def access_token(self, *, refresh: bool = False) -> AccessToken:
        """A valid token from the shared cache, or a new one from the identity endpoint."""
        if not refresh:
            cached = self._tokens.get(self._token_key)
            if cached is not None:
                return _remembered(cached)
        with self._token_lock:
            if not refresh:
                cached = self._tokens.get(self._token_key)
                if cached is not None:
                    return _remembered(cached)
            return _remembered(self._fetch_token())

    def _fetch_token(self) -> AccessToken:
        # POST with a form body: the documented alternative to query parameters that keeps
        # the secret out of URLs (and so out of proxy and server logs).
        response = self.transport.request(
            "POST",
            f"{self.base_url}/identity/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
            },
            headers={"Accept": "application/json"},
            check=self._check_identity,
            # Marketo counts no identity call against the instance's limits or quota.
            budgeted=False,
        )
        answer = Answer(response, "Marketo's identity endpoint", "issue an access token",
                        advice=messages.IDENTITY_ADVICE)
        body = answer.object()
        value = answer.text(body, "access_token")
        scrubbing.token_remember(value)
        expires_in = body.get("expires_in")
        if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
            raise answer.unexpected("without the number 'expires_in'")
        # Marketo hands back the same token with its remaining life until it expires; one
        # about to expire is still used once, and a 602 then brings a fresh one.
        return self._tokens.put(
            self._token_key, value, max(expires_in, 1.0), extra={"scope": str(body.get("scope") or "")}
        )

    def _check_identity(self, response: requests.Response) -> None:
        """Typed errors for the refusals; a 2xx is checked as an answer by _fetch_token."""
        if response.status_code < 300:
            return
        if response.status_code in (400, 401, 403):
            error = ""
            if _is_json(response):
                try:
                    body = response.json()
                except (ValueError, RecursionError):
                    body = None
                named = body.get("error") if isinstance(body, dict) else None
                # An OAuth error name, nothing longer: the rest of the body is not shown.
                if isinstance(named, str) and _OAUTH_ERROR.fullmatch(named):
                    error = named
            # Marketo's description can echo the client id; the error name is enough.
            reason = {
                "invalid_client": "the client secret does not match the client id",
                "unauthorized": "no API service has this client id",
            }.get(error, "the credentials were refused")
            raise AuthenticationError(
                f"Marketo refused the credentials (HTTP {response.status_code}"
                f"{', ' + error if error else ''}): {reason}. {messages.IDENTITY_ADVICE}",
                code=error or f"http_{response.status_code}",
                status=response.status_code,
            )
        if response.status_code == 404:
            raise ConfigurationError(
                f"There is no Marketo identity endpoint under {self.base_url}. Check that the "
                "base URL is the REST endpoint from Admin > Web Services.",
                code="http_404",
                status=404,
            )
        raise PermanentError(
            f"Marketo's identity endpoint answered HTTP {response.status_code}.",
            code=f"http_{response.status_code}",
            status=response.status_code,
        )

    # --- data calls ---------------------------------------------------------------------

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send an authenticated request; refresh the token once on 601/602."""
        url = f"{self.base_url}{path}"
        extra_headers = kwargs.pop("headers", {})
        for attempt in (1, 2):
            token = self.access_token(refresh=attempt == 2)
            headers = {**extra_headers, "Authorization": f"Bearer {token.value}"}
            try:
                return self.transport.request(
                    method, url, headers=headers, check=self._check_envelope, **kwargs
                )
            except DailyQuotaReached as reached:
                raise _budget_quota_error(reached) from None
            except TokenExpiredError as exc:
                if attempt == 2:
                    raise AuthenticationError(
                        "Marketo refused a freshly issued access token "
                        f"({exc.code or 'invalid token'}). Check that the API service's user is "
                        "active and its role has API access (Admin > Users & Roles).",
                        code=exc.code,
                    ) from None
                logger.info("Marketo token refused (%s); fetching a new one", exc.code)
                self._tokens.drop(self._token_key)
        raise AssertionError("unreachable")

    def _check_envelope(self, response: requests.Response) -> None:
        status = response.status_code
        if status == 401:
            raise TokenExpiredError("Marketo refused the access token (HTTP 401).", code="http_401")
        if status == 413:
            raise PermanentError(
                "Marketo refused the request as too large (HTTP 413): a sync call may carry at "
                "most 1 MB and a bulk import file at most 10 MB.",
                code="http_413",
                status=413,
            )
        if status == 404:
            raise ConfigurationError(
                f"There is no Marketo API at {self.base_url} (HTTP 404). Check that the base URL "
                "is the REST endpoint from Admin > Web Services.",
                code="http_404",
                status=404,
            )
        if status >= 400:
            raise PermanentError(
                f"Marketo answered HTTP {status}.", code=f"http_{status}", status=status
            )
        # Only a readable envelope saying success: false is an error here; anything else
        # that is not the documented answer is refused by the caller, which knows what the
        # call was for (and is not repeated by the transport).
        if not _is_json(response):
            return
        try:
            body = response.json()
        except (ValueError, RecursionError):
            return
        if not isinstance(body, Mapping) or body.get("success", True) is not False:
            return
        errors = body.get("errors")
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], Mapping) else {}
        raise self._envelope_error(str(first.get("code") or ""), str(first.get("message") or ""))

    def _envelope_error(self, code: str, marketo_message: str) -> DestinationError:
        marketo_message, code = self.scrub(marketo_message), self.scrub(code)
        if code in messages.TOKEN_CODES:
            return TokenExpiredError(f"Marketo refused the access token ({code}).", code=code)
        if code == "606":
            return RateLimitedError(
                "Marketo refused the call: its rate limit for this instance (calls per 20 seconds, "
                "shared by every integration) was reached (606). CohortSync retries for a whole "
                "20-second window before giving up; if this keeps happening, other integrations use "
                f"the budget too: lower calls_per_20s in the destination options. ({marketo_message})",
                code=code,
                retry_after=RATE_LIMIT_WAIT_SECONDS,
            )
        if code == "615":
            return RateLimitedError(
                "Marketo refused the call: its limit of concurrent calls for this instance (shared "
                "by every integration) was reached (615). CohortSync retries a few times before "
                "giving up; if this keeps happening, lower max_concurrency in the destination "
                f"options. ({marketo_message})",
                code=code,
            )
        if code == messages.QUOTA_CODE:
            return _quota_error(marketo_message, self._now())
        if code == messages.IMPORT_QUEUE_FULL_CODE:
            return ImportQueueFullError(
                "Marketo's bulk import queue is full (1016: at most 10 imports per instance, "
                "shared by every integration); waiting for a place.",
                code=code,
                retry_after=IMPORT_QUEUE_WAIT_SECONDS,
            )
        if code == "1029" and "quota" in marketo_message.lower():
            return QuotaExhaustedError(
                messages.envelope_message(code, marketo_message), code=code, resumes_at=""
            )
        if code in messages.TRANSIENT_CODES or code == "1029":
            return TransientError(
                f"Marketo had a temporary problem ({code}"
                f"{': ' + marketo_message if marketo_message else ''}); retrying.",
                code=code,
            )
        text = messages.envelope_message(code, marketo_message)
        if code == "603":
            return AuthenticationError(text, code=code)
        if code in ("610", "616"):
            return ConfigurationError(text, code=code)
        if code == "1006":
            return TargetValidationError(text, code=code)
        return PermanentError(text, code=code)

    def scrub(self, text: str) -> str:
        """Marketo's words for a message: without the secret or any token (destinations.scrubbing)."""
        return scrubbing.scrub(text, (self._client_secret,))

    # --- endpoints (kinds beside this client call() Marketo's other endpoints and read the
    # answers with result() and record_scrubbed()) ----------------------------------------

    def result(self, response: requests.Response, purpose: str, *, advice: str = "") -> tuple[Answer, list[Any]]:
        """The `result` array of a successful envelope ({"success": true, "result": [...]}),
        for the answer to a call() made for `purpose`; anything else is an unexpected answer."""
        answer = Answer(response, "Marketo", purpose, advice=advice)
        body = answer.object()
        if body.get("success") is not True:
            raise answer.unexpected('without "success": true')
        result = body.get("result")
        if not isinstance(result, list):
            raise answer.unexpected("without the array 'result'")
        return answer, result

    def describe_leads(self) -> list[dict[str, Any]]:
        """Lead fields from describe.json: [{displayName, dataType, rest: {name, readOnly}}...]."""
        response = self.call("GET", "/rest/v1/leads/describe.json")
        answer, result = self.result(response, "read the lead fields (describe)", advice=(
            "Check that the base URL is the REST endpoint from Admin > Web Services."
        ))
        return answer.objects(result, "result")

    def sync_leads(
        self, *, records: list[dict[str, Any]], lookup_field: str = "email"
    ) -> list[dict[str, Any]]:
        """createOrUpdate up to 300 leads; returns one result per record, in input order.
        Its texts (reasons) are scrubbed; an entry that is not an object comes back as {}."""
        if len(records) > 300:
            raise ValueError("Marketo accepts at most 300 leads per sync call.")
        response = self.call(
            "POST",
            "/rest/v1/leads.json",
            json={"action": "createOrUpdate", "lookupField": lookup_field, "input": records},
        )
        answer, result = self.result(response, "create or update leads", advice=NOT_WRITTEN)
        if len(result) != len(records):
            # Results map to input by position only: with another count none can be trusted.
            raise answer.unexpected(f"{len(result)} results for {len(records)} leads")
        return [self.record_scrubbed(item) for item in result]

    def record_scrubbed(self, item: Any) -> dict[str, Any]:
        """One per-record result with its reasons (codes and messages) scrubbed; {} for an
        entry that is not an object."""
        if not isinstance(item, dict):
            return {}
        reasons = item.get("reasons") or item.get("reason") or []
        if isinstance(reasons, dict):
            reasons = [reasons]
        if not isinstance(reasons, list):
            reasons = []
        return {**item, "reasons": [
            {"code": self.scrub(str(r.get("code") or "")), "message": self.scrub(str(r.get("message") or ""))}
            for r in reasons if isinstance(r, dict)
        ]}

    def bulk_import_create(
        self, *, csv_bytes: bytes | ImportBody, lookup_field: str = "email", list_id: int | None = None
    ) -> int:
        """Queue a CSV bulk import (its rows also added to static list `list_id`, when
        given); returns its batch id. Raises ImportQueueFullError (1016). `csv_bytes` is the
        CSV, or the whole request body already framed around it (ImportBody: no copy)."""
        params: dict[str, Any] = {"format": "csv", "lookupField": lookup_field}
        if list_id is not None:
            params["listId"] = int(list_id)
        body = csv_bytes if isinstance(csv_bytes, ImportBody) else import_body(csv_bytes)
        response = self.call(
            "POST",
            "/bulk/v1/leads.json",
            params=params,
            data=body.data,
            headers={"Content-Type": body.content_type},
        )
        answer, result = self.result(response, "queue a bulk lead import", advice=NOT_WRITTEN)
        batch_id = answer.objects(result, "result")[0].get("batchId") if result else None
        if isinstance(batch_id, bool) or not isinstance(batch_id, int):
            raise answer.unexpected("without the number 'batchId'")
        return batch_id

    def bulk_import_status(self, *, batch_id: int) -> dict[str, Any]:
        """result[0] of the status call: `status` is one of IMPORT_STATES, and a Complete
        import has its numOfRowsFailed and numOfRowsWithWarning counts; `message` is scrubbed."""
        response = self.call("GET", f"/bulk/v1/leads/batch/{int(batch_id)}.json")
        answer, result = self.result(
            response, f"read the status of bulk import {int(batch_id)}", advice=NOT_WRITTEN
        )
        status = answer.objects(result, "result")[0] if result else None
        if status is None or status.get("status") not in IMPORT_STATES:
            raise answer.unexpected("without a documented import 'status'")
        if status["status"] == "Complete":
            # Rows not listed as failed are taken as imported: the counts must be there.
            answer.count(status, "numOfRowsFailed")
            answer.count(status, "numOfRowsWithWarning")
        return {**status, "message": self.scrub(str(status.get("message") or ""))}

    def bulk_import_failures(self, *, batch_id: int, rows: int) -> dict[str, str]:
        """email (lower-cased) -> Marketo's reason, for the `rows` rows its status counted
        as failed (the file lists the original columns plus 'Import Failure Reason')."""
        return self._row_file(f"/bulk/v1/leads/batch/{int(batch_id)}/failures.json", rows=rows,
                              purpose=f"read the failed rows of bulk import {int(batch_id)}")

    def _row_file(self, path: str, *, rows: int, purpose: str) -> dict[str, str]:
        response = self.call("GET", path)
        answer = Answer(response, "Marketo", purpose, advice=NOT_WRITTEN)
        if response.status_code != 200:
            raise answer.unexpected("a status this call does not answer with")
        if "csv" not in (response.headers.get("Content-Type") or "").lower():
            raise answer.unexpected("not CSV")
        response.encoding = response.encoding or "utf-8"
        table = [row for row in csv.reader(io.StringIO(response.text.lstrip("\ufeff"))) if any(row)]
        header = [name.strip().lower() for name in table[0]] if table else []
        if "email" not in header or len(header) < 2:
            raise answer.unexpected("a CSV file without the 'email' and reason columns")
        if len(table) - 1 != rows:
            raise answer.unexpected(f"{len(table) - 1} rows where the import's status counted {rows}")
        email_at = header.index("email")
        if any(len(row) != len(header) or not row[email_at].strip() for row in table[1:]):
            # A row that names no lead would leave a failed lead counted as imported.
            raise answer.unexpected("CSV rows without an email or with missing columns")
        return {row[email_at].strip().lower(): self.scrub(row[-1].strip()) for row in table[1:]}


def _remembered(token: AccessToken) -> AccessToken:
    # Every token in use is scrubbed from messages, whoever fetched it.
    scrubbing.token_remember(token.value)
    return token


def _is_json(response: requests.Response) -> bool:
    return "json" in response.headers.get("Content-Type", "").lower()


# --- bulk import request bodies ------------------------------------------------------------
#
# An import file is sent as multipart/form-data with one part, `file`. A 10 MB file framed
# by requests' `files=` is a second 10 MB copy, made on the thread that sends it: with six
# files in flight those copies, freed and re-made on six threads, grew the process by ~40
# MiB (glibc keeps each thread's freed blocks). A file can instead be written inside its
# frame from the start (bulk.CsvFile) and sent as it is.


@dataclass(frozen=True)
class ImportBody:
    """A bulk import request's whole body (the CSV inside its multipart frame)."""

    data: bytes
    content_type: str


def import_part_head(boundary: str) -> bytes:
    return (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="leads.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()


def import_part_tail(boundary: str) -> bytes:
    return f"\r\n--{boundary}--\r\n".encode()


def import_boundary() -> str:
    # Random, as requests' own: a fixed one could occur in an address and cut the file there.
    return secrets.token_hex(16)


def import_content_type(boundary: str) -> str:
    return f"multipart/form-data; boundary={boundary}"


def import_body(csv_bytes: bytes) -> ImportBody:
    """Frame a CSV file for the import call (a copy: for files built elsewhere)."""
    boundary = import_boundary()
    return ImportBody(
        data=b"".join((import_part_head(boundary), csv_bytes, import_part_tail(boundary))),
        content_type=import_content_type(boundary),
    )
