"""Typed errors raised by destination clients.

Messages are sentences a growth engineer can act on; they never contain secrets or tokens
(every message and code is scrubbed when the error is made, see destinations.scrubbing).
"""

from __future__ import annotations

from destinations.scrubbing import scrub

# Codes stored on runs and failure rows when an error carries no code of the destination's
# own: public values, never renamed. (They were once derived from the class names; these are
# those very strings, written down.)
UNEXPECTED_RESPONSE = "unexpected_response"
DESTINATION = "destination"
TRANSIENT = "transient"
RATE_LIMITED = "rate_limited"
PERMANENT = "permanent"
AUTHENTICATION = "authentication"
CONFIGURATION = "configuration"
ENDPOINT_NOT_ALLOWED = "endpoint_not_allowed"
REDIRECT_REFUSED = "redirect_refused"
TARGET_VALIDATION = "target_validation"
QUOTA_EXHAUSTED = "quota_exhausted"
INVALID_IDENTITY = "invalid_identity"
# A stored code is at most this long (SyncRun.error_code, SyncFailure.code).
MAX_CODE_LENGTH = 64


class DestinationError(Exception):
    """Base class. `code` is the destination's own code where it has one; `stored_code` is
    what runs and failure rows keep (that code, or the class's `default_code`)."""

    default_code = DESTINATION

    def __init__(self, message: str, *, code: str = "", status: int | None = None) -> None:
        message, code = scrub(message), scrub(code)
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]" if self.code else self.message

    @property
    def stored_code(self) -> str:
        return (self.code or self.default_code)[:MAX_CODE_LENGTH]


def error_retriable(exc: BaseException) -> bool:
    """Whether the users an error kept from being written may succeed when sent again as they
    are: the one place that decides it for errors. Transient errors may; so may a used-up
    quota (the next run after its reset sends them). Everything else (credentials, settings,
    a refused request, a bug) fails the same way until someone changes something."""
    return isinstance(exc, TransientError | QuotaExhaustedError)


class TransientError(DestinationError):
    """Worth retrying: network errors, 5xx, throttling, token expiry."""

    default_code = TRANSIENT

    def __init__(
        self,
        message: str,
        *,
        code: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status)
        self.retry_after = retry_after


class UnexpectedResponseError(TransientError):
    """The destination answered, but not with the documented answer for the call.

    Nothing in such an answer is trusted: the users it concerns are not acknowledged and
    are sent again (retriable), and a run-level call (token, schema) fails the run. The
    message names the HTTP status, the content type and what the call was for, never the
    body. Raised after the answer was read, so the transport does not repeat the call.
    """

    default_code = UNEXPECTED_RESPONSE

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, code=UNEXPECTED_RESPONSE, status=status)


class RateLimitedError(TransientError):
    """The destination throttled us (HTTP 429, Marketo 606/615)."""

    default_code = RATE_LIMITED


class PermanentError(DestinationError):
    """Retrying the same request will fail the same way."""

    default_code = PERMANENT


class AuthenticationError(PermanentError):
    """Credentials were refused: wrong client id/secret, subdomain, MID or permissions."""

    default_code = AUTHENTICATION


class ConfigurationError(PermanentError):
    """The destination settings are unusable (bad subdomain, disallowed host, ...)."""

    default_code = CONFIGURATION


class EndpointNotAllowedError(ConfigurationError):
    """A URL refused by destinations.url_policy: malformed, ambiguous, or outside the
    official hosts and COHORTSYNC_ALLOWED_API_HOSTS."""

    default_code = ENDPOINT_NOT_ALLOWED


class RedirectRefusedError(PermanentError):
    """The destination answered with a redirect (3xx), which is never followed."""

    default_code = REDIRECT_REFUSED


class TargetValidationError(PermanentError):
    """The target field/column/attribute is missing or has the wrong type."""

    default_code = TARGET_VALIDATION


class QuotaExhaustedError(PermanentError):
    """A daily quota is used up (Marketo 607): stop the run; its users may be sent again
    after the reset (see error_retriable)."""

    default_code = QUOTA_EXHAUSTED

    def __init__(self, message: str, *, code: str = "", resumes_at: str = "") -> None:
        super().__init__(message, code=code)
        self.resumes_at = resumes_at


class InvalidIdentityError(PermanentError):
    """A user's identity value cannot be sent to this destination (fails locally, no call)."""

    default_code = INVALID_IDENTITY
