"""Typed errors raised by destination clients.

Messages are sentences a growth engineer can act on; they never contain secrets or tokens
(every message and code is scrubbed when the error is made, see destinations.scrubbing).
"""

from __future__ import annotations

from destinations.scrubbing import scrub

# A destination answer that is not the documented one (wrong status, not JSON, truncated,
# wrong shape, a result count that does not match what was sent). Stored on runs and
# failure rows: a public value, never renamed.
UNEXPECTED_RESPONSE = "unexpected_response"


class DestinationError(Exception):
    """Base class. `code` is the destination's own code where it has one."""

    retriable = False

    def __init__(self, message: str, *, code: str = "", status: int | None = None) -> None:
        message, code = scrub(message), scrub(code)
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]" if self.code else self.message


class TransientError(DestinationError):
    """Worth retrying: network errors, 5xx, throttling, token expiry."""

    retriable = True

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

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, code=UNEXPECTED_RESPONSE, status=status)


class RateLimitedError(TransientError):
    """The destination throttled us (HTTP 429, Marketo 606/615)."""


class PermanentError(DestinationError):
    """Retrying the same request will fail the same way."""


class AuthenticationError(PermanentError):
    """Credentials were refused: wrong client id/secret, subdomain, MID or permissions."""


class ConfigurationError(PermanentError):
    """The destination settings are unusable (bad subdomain, disallowed host, ...)."""


class EndpointNotAllowedError(ConfigurationError):
    """A URL refused by destinations.url_policy: malformed, ambiguous, or outside the
    official hosts and COHORTSYNC_ALLOWED_API_HOSTS."""


class RedirectRefusedError(PermanentError):
    """The destination answered with a redirect (3xx), which is never followed."""


class TargetValidationError(PermanentError):
    """The target field/column/attribute is missing or has the wrong type."""


class QuotaExhaustedError(PermanentError):
    """A daily quota is used up (Marketo 607): stop the run, resume after the reset."""

    def __init__(self, message: str, *, code: str = "", resumes_at: str = "") -> None:
        super().__init__(message, code=code)
        self.resumes_at = resumes_at


class InvalidIdentityError(PermanentError):
    """A user's identity value cannot be sent to this destination (fails locally, no call)."""
