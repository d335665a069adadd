"""SFMC's error answers turned into typed errors whose messages say what to fix.

SFMC answers errors in three shapes: the REST envelope {"message", "errorcode",
"additionalErrors"}, the async {"resultMessages": [...]} and OAuth's {"error",
"error_description"}; throttling may be plain text. SFMC's words reach a message only
through `shown()`, which scrubs them (destinations.scrubbing) so a secret or token echoed
by a proxy never reaches a log or the admin.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import requests

from destinations.errors import (
    AuthenticationError,
    ConfigurationError,
    DestinationError,
    PermanentError,
)
from destinations.scrubbing import scrub

MAX_MESSAGE_LENGTH = 300

PERMISSIONS_HINT = (
    "In Setup > Apps > Installed Packages, give the package's API Integration the "
    "permissions CohortSync needs: Data > Data Extensions read and write (data extension "
    "syncs), Contacts > List and Subscribers and Audiences read and write (contacts syncs)."
)


@dataclass(frozen=True)
class SfmcErrorBody:
    """What SFMC said, whatever the shape."""

    code: str = ""
    message: str = ""
    details: list[str] = field(default_factory=list)
    detail_codes: list[str] = field(default_factory=list)
    result_code: str = ""
    is_envelope: bool = False

    @property
    def text(self) -> str:
        parts = [self.message] if self.message else []
        parts += [d for d in self.details if d and d not in parts]
        return " ".join(p.rstrip(".") + "." for p in parts)


def shown(text: str, secrets: Iterable[str] = ()) -> str:
    """SFMC's words as a message shows them: scrubbed, on one line, at most 300 characters
    (cut after scrubbing, so no part of a secret survives the cut)."""
    text = " ".join(scrub(text, secrets).split())
    return text if len(text) <= MAX_MESSAGE_LENGTH else text[: MAX_MESSAGE_LENGTH - 1] + "…"


def response_json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def error_body(response: requests.Response) -> SfmcErrorBody:
    data = response_json(response)
    if isinstance(data, dict):
        if isinstance(data.get("message"), str):
            additional = [e for e in data.get("additionalErrors") or [] if isinstance(e, dict)]
            return SfmcErrorBody(
                code=str(data.get("errorcode", data.get("errorCode", ""))),
                message=data["message"],
                details=[str(e.get("message", "")) for e in additional],
                detail_codes=[str(e.get("errorcode", e.get("errorCode", ""))) for e in additional],
                is_envelope=True,
            )
        results = [r for r in data.get("resultMessages") or [] if isinstance(r, dict)]
        if results:
            return SfmcErrorBody(
                code=str(results[0].get("resultCode", "")),
                message=str(results[0].get("message", "")),
                details=[str(r.get("message", "")) for r in results[1:]],
                result_code=str(results[0].get("resultCode", "")),
            )
        if "error" in data:
            return SfmcErrorBody(
                code=str(data.get("error", "")), message=str(data.get("error_description", ""))
            )
    text = (response.text or "").strip()
    return SfmcErrorBody(message=text if text and "<" not in text[:1] else "")


def token_error(response: requests.Response, *, url: str, has_account_id: bool,
                secrets: Iterable[str]) -> DestinationError:
    body = error_body(response)
    said = f" SFMC said: {shown(body.message, secrets)}" if body.message else ""
    status = response.status_code
    if status in (404, 405) or (status < 400 and not body.code):
        return ConfigurationError(
            f"There is no SFMC token endpoint at {url} (HTTP {status}): check the subdomain "
            "(only the part before .auth.marketingcloudapis.com) or the auth base URL.",
            code=f"http_{status}", status=status,
        )
    if body.code == "invalid_client" or status == 401:
        return AuthenticationError(
            "SFMC refused the client id/secret: check the Installed Package's API Integration "
            "credentials and that the subdomain is the package's." + said,
            code=body.code or "http_401", status=status,
        )
    mid_hint = (
        " Check that the account id (MID) is a business unit this package can access, or "
        "leave it empty to use the package's own."
        if has_account_id else ""
    )
    if status == 403:
        return AuthenticationError(
            "SFMC refused to issue a token for this package (HTTP 403)." + mid_hint + said,
            code=body.code or "http_403", status=status,
        )
    return AuthenticationError(
        f"SFMC refused the token request (HTTP {status}{', ' + body.code if body.code else ''})."
        + mid_hint + said,
        code=body.code or f"http_{status}", status=status,
    )


def rest_error(response: requests.Response, *, action: str, secrets: Iterable[str]) -> DestinationError:
    """A typed error for a failed REST call; `action` says what we were doing."""
    body = error_body(response)
    status = response.status_code
    said = f" SFMC said: {shown(body.text, secrets)}" if body.text else ""
    code = body.code or f"http_{status}"
    if status == 401:
        return AuthenticationError(
            f"SFMC refused a freshly issued access token while trying to {action}: check that "
            "the package is enabled and that the account id (MID), if set, is one it may "
            "access." + said,
            code=code, status=status,
        )
    if status == 403:
        if body.code == "20001":
            lead = f"SFMC refused to {action}: a business rule needed for it is not enabled on the account."
        else:
            lead = f"SFMC refused to {action} because the API package lacks a permission."
        return AuthenticationError(f"{lead} {PERMISSIONS_HINT}{said}", code=code, status=status)
    if status == 413:
        return PermanentError(
            f"SFMC refused to {action}: the request is larger than SFMC accepts (5 MB).",
            code="payload_too_large", status=status,
        )
    if status == 415:
        return PermanentError(
            f"SFMC refused to {action}: unsupported media type (HTTP 415).", code=code, status=status
        )
    return PermanentError(f"SFMC refused to {action} (HTTP {status}).{said}", code=code, status=status)
