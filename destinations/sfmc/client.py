"""The only module that speaks SFMC HTTP (data extensions and contacts alike).

Every request goes through `destinations.http.HttpTransport` (allowed hosts, timeouts,
rate limit, concurrency, retries). Tokens come from `POST {auth}/v2/token`, live in the
shared Django cache until shortly before expiry, and are refreshed once when a REST call
answers 401.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from destinations import scrubbing
from destinations.answers import Answer
from destinations.base import DestinationConfig
from destinations.budget import BudgetLimits, account_budget
from destinations.errors import (
    AuthenticationError,
    ConfigurationError,
    RateLimitedError,
    TransientError,
)
from destinations.http import (
    AccessToken,
    HttpTransport,
    RetryPolicy,
    TokenCache,
    TokenExpiredError,
    ensure_url_allowed,
)
from destinations.sfmc.common import json_bytes
from destinations.sfmc.messages import error_body, rest_error, shown, token_error
from destinations.sfmc.settings import (
    SfmcOptions,
    normalize_sfmc_auth_base_url,
    normalize_sfmc_subdomain,
    sfmc_account_key,
)
from destinations.validation import SettingError

# Tokens are refreshed this long before SFMC says they expire (it already says ~1 min early).
TOKEN_EARLY_EXPIRY_SECONDS = 60.0
# A contact PATCH refused with one of these is that contact's failure, not the run's.
CONTACT_REFUSALS = (400, 404, 409)
# Ends the message of an unexpected answer to a write: what becomes of the users.
NOT_WRITTEN = (
    "These users are not acknowledged and are sent again by the next run. If this keeps "
    "happening, something between CohortSync and SFMC (a proxy?) answers in its place."
)



def sfmc_budget_limits(options: SfmcOptions) -> BudgetLimits:
    """The tenant's budget: requests_per_second, paced (a fractional rate such as 0.5/s is one
    call per 2 s), and max_concurrency. SFMC has no daily quota. Token requests draw on it
    too: SFMC throttles them like any other (they are rare, tokens are cached)."""
    rate = options.requests_per_second
    calls = max(1, int(rate))
    return BudgetLimits(window_calls=calls, window_seconds=calls / rate,
                        max_concurrency=options.max_concurrency, paced=True)


def sfmc_auth_base_url(config: DestinationConfig) -> str:
    """The auth base URL: the configured one (pasted token URLs trimmed) or the subdomain's."""
    try:
        configured = normalize_sfmc_auth_base_url(config.setting("auth_base_url"))
    except SettingError as exc:
        raise ConfigurationError(
            f"The auth base URL is refused: {exc} Leave it empty to use "
            "https://<subdomain>.auth.marketingcloudapis.com.",
            code="bad_auth_url",
        ) from None
    if configured:
        return configured
    try:
        subdomain = normalize_sfmc_subdomain(config.setting("subdomain"))
    except SettingError as exc:
        raise ConfigurationError(str(exc), code="bad_subdomain") from None
    return f"https://{subdomain}.auth.marketingcloudapis.com"


def normalize_instance_url(value: str) -> str:
    """rest_instance_url as https://host/ (SFMC's docs show it without a scheme)."""
    url = (value or "").strip()
    if url and "://" not in url:
        url = f"https://{url}"
    return url.rstrip("/") + "/"


@dataclass(frozen=True)
class RowsetResult:
    """The rowset endpoint's answer: ok, or SFMC's per-row rejection (HTTP 400 / 10006)."""

    ok: bool
    code: str = ""
    messages: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class AsyncResultsPage:
    """One checked page of an async job's results; `unexpected(problem)` makes the error for
    a problem only the caller can see (a page that is not the one asked for)."""

    items: list[dict[str, Any]]
    page: int | None
    page_size: int | None
    unexpected: Callable[[str], Exception]


@dataclass(frozen=True)
class AsyncStatus:
    request_status: str
    result_status: str
    has_errors: bool
    raw: Mapping[str, Any]


class SfmcClient:
    def __init__(
        self,
        config: DestinationConfig,
        options: SfmcOptions | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy | None = None,
        token_cache: TokenCache | None = None,
    ) -> None:
        """`options`: the kind's parsed options (both SFMC kinds' extend SfmcOptions); by
        default `config.options` read as SfmcOptions."""
        options = options if options is not None else SfmcOptions.of(config.options)
        self.client_id = config.client_id
        self.account_id = config.setting("account_id")
        # A bad subdomain is reported on first use, like every other settings problem, so
        # building a connector (admin pages, the engine) never fails.
        self._config_error: ConfigurationError | None = None
        try:
            self.auth_base_url = sfmc_auth_base_url(config)
        except ConfigurationError as exc:
            self.auth_base_url, self._config_error = "", exc
        self._secret = config.client_secret
        scrubbing.secret_remember(self._secret)
        self.requests_per_second = options.requests_per_second
        self.max_concurrency = options.max_concurrency
        self.sleep = sleep
        self.budget = account_budget(
            key=sfmc_account_key(config.settings),
            limits=sfmc_budget_limits(options),
        )
        self.transport = HttpTransport(budget=self.budget, retry=retry, sleep=sleep)
        self._tokens = token_cache or TokenCache(
            namespace="sfmc", early_expiry_seconds=TOKEN_EARLY_EXPIRY_SECONDS
        )
        self._token_key = self._tokens.key(
            self.auth_base_url, self.client_id, self._secret, self.account_id
        )
        self._token_lock = threading.Lock()

    @property
    def api_calls(self) -> int:
        return self.transport.api_calls

    # --- token -------------------------------------------------------------------------

    def _secrets(self) -> list[str]:
        """What scrubbing removes besides every token this process has used."""
        return [self._secret]

    def scrub(self, text: str) -> str:
        """SFMC's words for a message: without the secret or any token (destinations.scrubbing)."""
        return shown(text, self._secrets())

    @staticmethod
    def _remember(token: AccessToken) -> AccessToken:
        # Every token in use is scrubbed from messages, whoever fetched it.
        scrubbing.token_remember(token.value)
        return token

    def access_token(self) -> AccessToken:
        if self._config_error is not None:
            raise self._config_error
        token = self._tokens.get(self._token_key)
        if token is not None:
            return self._remember(token)
        # One fetch per process at a time: parallel pushes would otherwise each ask for a
        # token, and SFMC throttles clients that request tokens too often.
        with self._token_lock:
            return self._remember(self._tokens.get(self._token_key) or self._fetch_token())

    def _fetch_token(self) -> AccessToken:
        url = f"{self.auth_base_url}/v2/token"
        if not self.client_id or not self._secret:
            raise ConfigurationError(
                "Enter the client id and client secret of the SFMC Installed Package's API "
                "Integration.", code="missing_credentials",
            )
        body: dict[str, Any] = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._secret,
        }
        if self.account_id:
            body["account_id"] = int(self.account_id) if self.account_id.isdigit() else self.account_id

        def check(response: requests.Response) -> None:
            if response.status_code >= 400:
                raise token_error(response, url=url, has_account_id=bool(self.account_id),
                                  secrets=self._secrets())

        try:
            response = self.transport.request("POST", url, json=body, check=check)
        except RateLimitedError as exc:
            raise RateLimitedError(
                "SFMC kept throttling token requests. Tokens are cached and reused; if "
                "several tools share this package, give CohortSync its own package.",
                code=exc.code, status=exc.status, retry_after=exc.retry_after,
            ) from None
        except TransientError as exc:
            if exc.code == "network_error":
                host = urlsplit(url).hostname
                raise TransientError(
                    f"Could not reach the SFMC auth host {host}: check the subdomain (only the "
                    "part before .auth.marketingcloudapis.com) and the server's network access.",
                    code=exc.code,
                ) from None
            raise
        answer = Answer(
            response, "SFMC's token endpoint", "issue an access token",
            advice=f"Check that {url} is an SFMC token endpoint: the subdomain (only the part "
            "before .auth.marketingcloudapis.com) or the auth base URL.",
        )
        data = answer.object()
        value = answer.text(data, "access_token")
        scrubbing.token_remember(value)
        rest_url = data.get("rest_instance_url")
        if rest_url is not None and not isinstance(rest_url, str):
            raise answer.unexpected("with a 'rest_instance_url' that is not text")
        rest_url = normalize_instance_url(rest_url or "")
        if rest_url == "/":
            raise ConfigurationError(
                "SFMC issued a token without a REST instance URL; check that the package is a "
                "Server-to-Server API Integration.", code="bad_token_response",
            )
        ensure_url_allowed(rest_url)
        try:
            expires_in = float(data.get("expires_in") or 1079)
        except (TypeError, ValueError):
            expires_in = 1079.0
        return self._tokens.put(self._token_key, value, expires_in, {"rest_url": rest_url})

    def _drop_token(self, token: AccessToken) -> None:
        with self._token_lock:
            current = self._tokens.get(self._token_key)
            # Another thread may already have replaced it with a fresh one; keep that.
            if current is not None and current.value == token.value:
                self._tokens.drop(self._token_key)

    # --- REST --------------------------------------------------------------------------

    def rest(
        self,
        method: str,
        path: str,
        *,
        action: str,
        accept: Callable[[requests.Response], bool] | None = None,
        body: bytes | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Call a REST path on the instance URL. A 401 refreshes the token once.

        `accept(response)` may return True to hand a 4xx back to the caller (per-row
        rejections) or raise TransientError to have it retried. `body`: JSON already encoded.
        """
        for attempt in (1, 2):
            token = self.access_token()
            url = token.extra["rest_url"] + path.lstrip("/")
            headers = {"Authorization": f"Bearer {token.value}"}
            if body is not None:
                headers["Content-Type"] = "application/json"
                kwargs["data"] = body

            def check(response: requests.Response) -> None:
                if response.status_code == 401:
                    raise TokenExpiredError("SFMC refused the access token.", code="401", status=401)
                if accept is not None and accept(response):
                    return
                if response.status_code >= 400:
                    raise rest_error(response, action=action, secrets=self._secrets())

            try:
                return self.transport.request(method, url, headers=headers, check=check, **kwargs)
            except TokenExpiredError:
                self._drop_token(token)
                if attempt == 2:
                    raise AuthenticationError(
                        f"SFMC refused a freshly issued access token while trying to {action}: "
                        "check that the package is enabled and that the account id (MID), if "
                        "set, is one it may access.", code="401", status=401,
                    ) from None
            except RateLimitedError as exc:
                raise RateLimitedError(
                    f"SFMC kept throttling requests while trying to {action}. Lower "
                    "requests_per_second or max_concurrency in the destination options, or "
                    "ask Salesforce about the account's API limits.",
                    code=exc.code, status=exc.status, retry_after=exc.retry_after,
                ) from None
        raise AssertionError("unreachable")

    # --- data extensions -----------------------------------------------------------------

    def data_extension_id(self, key: str) -> str:
        def accept(response: requests.Response) -> bool:
            return response.status_code in (400, 404)

        response = self.rest(
            "GET", f"data/v1/customobjectdata/key/{quote(key, safe='')}/rowset",
            action=f"read data extension '{key}'", accept=accept, params={"$pageSize": 1},
        )
        de_id = None
        if response.status_code < 400:
            answer = Answer(response, "SFMC", f"find data extension '{key}'")
            de_id = answer.object().get("customObjectId")
            if de_id is not None and (not isinstance(de_id, str) or not de_id.strip()):
                raise answer.unexpected("with a 'customObjectId' that is not an id")
        if not de_id:
            # 400/404, or (unverified) a rowset without the id: SFMC's "no such key".
            said = error_body(response).text
            raise ConfigurationError(
                f"SFMC has no data extension with external key '{key}' that this package can "
                "see: check the External Key (not the name) in Contact Builder > Data "
                "Extensions, and the account id (MID) if the data extension lives in another "
                "business unit." + (f" SFMC said: {self.scrub(said)}" if said else ""),
                code=error_body(response).code or "data_extension_not_found",
                status=response.status_code,
            )
        return de_id

    def data_extension_fields(self, de_id: str) -> list[dict[str, Any]]:
        response = self.rest(
            "GET", f"data/v1/customobjects/{quote(de_id, safe='')}/fields",
            action="read the data extension's columns",
        )
        answer = Answer(response, "SFMC", "read the data extension's columns")
        fields = answer.objects(answer.object().get("fields"), "fields")
        for field_spec in fields:
            answer.text(field_spec, "name")
        return fields

    def data_extension_add_field(self, de_id: str, field_spec: Mapping[str, Any]) -> None:
        action = f"add the column '{field_spec.get('name')}' to the data extension"
        response = self.rest(
            "POST", f"data/v1/customobjectsasync/{quote(de_id, safe='')}/fields",
            action=action, json={"fields": [dict(field_spec)]},
        )
        # Queued on SFMC's side (its body is not documented): the caller re-reads the columns.
        Answer(response, "SFMC", action).object(statuses=(200, 201, 202))

    def rowset_upsert(self, key: str, rows: Sequence[Mapping[str, Any]], *, encoded: bytes | None = None) -> RowsetResult:
        """`encoded`: `rows` already encoded as a JSON array (common.chunks_by_size)."""

        def accept(response: requests.Response) -> bool:
            if response.status_code != 400:
                return False
            body = error_body(response)
            if body.code == "10006":
                if not body.details:
                    # Segment's experience: an aggregate error without details is transient.
                    raise TransientError(
                        "SFMC could not save the rows and gave no reason (10006).",
                        code="10006", status=400,
                    )
                return True
            return False

        action = f"write rows to data extension '{key}'"
        response = self.rest(
            "POST", f"hub/v1/dataevents/key:{quote(key, safe='')}/rowset",
            action=action, accept=accept,
            body=encoded if encoded is not None else json_bytes(list(rows)),
        )
        if response.status_code == 400:
            body = error_body(response)
            detail_code = next((c for c in body.detail_codes if c), "")
            messages = [self.scrub(m) for m in body.details if m] or [self.scrub(body.message)]
            return RowsetResult(ok=False, code=detail_code or body.code, messages=messages)
        # Written: SFMC echoes the rows it saved, in order. Anything else (a proxy's page,
        # another body) proves nothing was.
        answer = Answer(response, "SFMC", action, advice=NOT_WRITTEN)
        echoed = answer.array()
        if len(echoed) != len(rows):
            raise answer.unexpected(f"{len(echoed)} rows echoed for {len(rows)} sent")
        answer.objects(echoed, "rows")
        return RowsetResult(ok=True)

    def async_upsert_submit(self, key: str, items: Sequence[Mapping[str, Any]], *, encoded: bytes | None = None) -> str:
        """`encoded`: `items` already encoded as a JSON array (common.chunks_by_size)."""
        action = f"queue rows for data extension '{key}'"

        def accept(response: requests.Response) -> bool:
            # The second rejection shape ({"resultMessages": [...]}) is read below; the
            # envelope shape is translated by rest().
            return response.status_code == 400 and not error_body(response).is_envelope

        response = self.rest(
            "PUT", f"data/v1/async/dataextensions/key:{quote(key, safe='')}/rows",
            action=action, accept=accept,
            body=b'{"items":' + (encoded if encoded is not None else json_bytes(list(items))) + b"}",
        )
        # Accepted is 202 (SFMC's docs) or 200 (what Segment's mocks answer); refused is a 400.
        answer = Answer(response, "SFMC", action, advice=NOT_WRITTEN)
        data = answer.object(statuses=(200, 202, 400))
        results = answer.objects(data.get("resultMessages", []), "resultMessages")
        errors = [r for r in results if str(r.get("resultClass", "")).lower() == "error"]
        if errors or response.status_code == 400:
            said = "; ".join(str(r.get("message", "")) for r in errors)
            code = str(errors[0].get("resultCode", "")) if errors else ""
            hint = (
                " Check the data extension's External Key (not the name) and the account id (MID)."
                if code == "CustomObjectNotFound" else ""
            )
            raise ConfigurationError(
                f"SFMC did not accept the request to {action}."
                + (f" SFMC said: {self.scrub(said)}" if said else "") + hint,
                code=self.scrub(code) or "http_400",
            )
        return answer.text(data, "requestId")

    def async_status(self, request_id: str) -> AsyncStatus | None:
        """The job's status, or None while SFMC has not indexed the request yet."""
        action = f"read the status of queued upsert {request_id}"
        response = self.rest(
            "GET", f"data/v1/async/{quote(request_id, safe='')}/status", action=action,
        )
        answer = Answer(response, "SFMC", action, advice=NOT_WRITTEN)
        data = answer.object()
        if "status" not in data:
            # Not indexed yet: {"requestId", "resultMessages": [AsyncRequestStatusNotFound]}.
            answer.objects(data.get("resultMessages"), "resultMessages")
            return None
        status = data["status"]
        if not isinstance(status, dict):
            raise answer.unexpected("with a 'status' that is not an object")
        request_status = answer.text(status, "requestStatus")
        result_status, has_errors = status.get("resultStatus", ""), status.get("hasErrors", False)
        if not isinstance(result_status, str) or not isinstance(has_errors, bool):
            raise answer.unexpected("with a 'resultStatus' or 'hasErrors' of the wrong type")
        if request_status.lower() == "complete" and result_status.lower() not in ("ok", "has errors"):
            # Only "OK" says every row was written; without it nothing is.
            raise answer.unexpected("a completed upsert without its 'resultStatus' (OK or Has Errors)")
        return AsyncStatus(
            request_status=request_status, result_status=result_status, has_errors=has_errors, raw=status,
        )

    def async_results(self, request_id: str, *, page: int, page_size: int, rows: int) -> AsyncResultsPage:
        """One page of the per-row results of a job of `rows` rows (in submission order)."""
        action = f"read the per-row results of queued upsert {request_id}"
        response = self.rest(
            "GET", f"data/v1/async/{quote(request_id, safe='')}/results",
            action=action, params={"$page": page, "$pageSize": page_size},
        )
        answer = Answer(response, "SFMC", action, advice=NOT_WRITTEN)
        data = answer.object()
        items = answer.objects(data.get("items"), "items")
        for item in items:
            answer.text(item, "status")
        count = data.get("count")
        if count is not None and count != rows:
            raise answer.unexpected(f"a count of {answer.count(data, 'count')} results for {rows} rows")
        said_page, said_size = data.get("page"), data.get("pageSize")
        return AsyncResultsPage(
            items=[{**item, "message": self.scrub(str(item.get("message") or "")), "errors": [
                {**e, "errorMessage": self.scrub(str(e.get("errorMessage") or e.get("message") or ""))}
                for e in item.get("errors") or [] if isinstance(e, dict)
            ]} for item in items],
            page=said_page if isinstance(said_page, int) else None,
            page_size=said_size if isinstance(said_size, int) else None,
            unexpected=answer.unexpected,
        )

    # --- contacts ------------------------------------------------------------------------

    def attribute_set_definitions(self, *, page: int, page_size: int) -> dict[str, Any]:
        response = self.rest(
            "GET", "contacts/v1/attributeSetDefinitions", action="list the attribute sets",
            params={"$page": page, "$pageSize": page_size},
        )
        answer = Answer(response, "SFMC", "list the attribute sets")
        data = answer.object()
        for item in answer.objects(data.get("items"), "items"):
            if "attributes" in item:
                answer.objects(item["attributes"], "attributes")
            else:  # read by id when it is the one wanted
                answer.text(item, "id")
        return data

    def attribute_set_definition(self, set_id: str) -> dict[str, Any]:
        response = self.rest(
            "GET", f"contacts/v1/attributeSetDefinitions/{quote(set_id, safe='')}",
            action="read the attribute set",
        )
        answer = Answer(response, "SFMC", "read the attribute set")
        data = answer.object()
        answer.objects(data.get("attributes"), "attributes")
        return data

    def contact_update(self, body: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """PATCH one contact: (200, {"operationStatus": "OK" or "FAIL", ...}), or a
        400/404/409 and its JSON error body as that contact's failure."""
        response = self.rest(
            "PATCH", "contacts/v1/contacts", action="update a contact",
            accept=lambda r: r.status_code in CONTACT_REFUSALS, json=dict(body),
        )
        answer = Answer(response, "SFMC", "update a contact", advice=(
            "This contact is not acknowledged and is sent again by the next run."
        ))
        data = answer.object(statuses=(200, *CONTACT_REFUSALS))
        if response.status_code == 200 and str(data.get("operationStatus", "")).upper() not in ("OK", "FAIL"):
            raise answer.unexpected("without an 'operationStatus' of OK or FAIL")
        return response.status_code, data

    def error_text(self, response_body: Any) -> str:
        """SFMC's message(s) from a contact failure body, scrubbed."""
        messages: list[str] = []
        if isinstance(response_body, dict):
            if isinstance(response_body.get("message"), str):
                messages.append(response_body["message"])
            for item in response_body.get("resultMessages") or []:
                if isinstance(item, dict) and item.get("message"):
                    messages.append(str(item["message"]))
        return self.scrub("; ".join(dict.fromkeys(messages)))
