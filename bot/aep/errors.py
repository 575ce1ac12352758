"""Typed errors from Adobe Experience Platform, each with a message a person can act on.

AepError
 ├── ProfileNotFound          404, or a POST entry with an empty entity
 ├── TooManyIdentities        422 "Too many related identities" (graph above 50 identities)
 ├── LookupRejected           other 400/422: the request could not be processed
 ├── RateLimited              429, after honouring retryAfterMs while the deadline allowed
 ├── AepUnavailable           5xx, timeouts, connection failures, the overall deadline
 ├── CredentialsProblem       401/403 from IMS or the gateway, missing entitlement
 └── MalformedResponse        a body that is not the documented shape
"""

from __future__ import annotations


class AepError(Exception):
    """Root of every error the AEP client raises. `message` is safe to show a person."""

    status: int | None
    request_id: str | None

    def __init__(
        self, message: str, *, status: int | None = None, request_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.request_id = request_id


class ProfileNotFound(AepError):
    """No profile holds this identity (under the merge policy in use)."""


class TooManyIdentities(AepError):
    """The identity graph links more than 50 identities; Profile refuses the lookup."""


class LookupRejected(AepError):
    """Platform refused the request as malformed or unprocessable (400, other 422)."""


class RateLimited(AepError):
    """Platform asked us to slow down and the wait did not fit the lookup's deadline."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status: int | None = 429,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status=status, request_id=request_id)
        self.retry_after = retry_after


class AepUnavailable(AepError):
    """Platform did not answer in time or answered with a server error."""


class CredentialsProblem(AepError):
    """The bot's Adobe credentials were refused or lack a permission."""


class MalformedResponse(AepError):
    """Platform answered with a body the client cannot read."""
