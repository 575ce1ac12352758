"""Typed errors from Adobe Experience Platform, each with a message a person can act on.

AepError
 ├── ProfileNotFound          404, or a POST entry with an empty entity
 ├── TooManyIdentities        422 "Too many related identities" (graph above 50 identities)
 ├── LookupRejected           other 400/422: the request could not be processed
 ├── RateLimited              429, after honouring retryAfterMs while the deadline allowed
 ├── AepUnavailable           no usable answer from Platform or IMS; always one of:
 │    ├── AepServerError      Platform answered, with a 5xx
 │    ├── AepTimedOut         Platform did not answer in time (socket timeout, the deadline)
 │    ├── AepUnreachable      the connection to Platform failed (refused, reset, DNS)
 │    └── ImsUnavailable      Adobe's sign-in service (IMS) failed, timed out or was unreachable
 ├── CredentialsProblem       401/403 from IMS or the gateway, missing entitlement
 ├── Misconfigured            the deployment points at something that is not there: a gateway
 │                            404 (`error_code` body: wrong path, region or sandbox), or no
 │                            default merge policy when AEP_MERGE_POLICY_ID is unset
 ├── AudiencesNotFound        bulk-get 404 (`UPAPI-113000-404`): none of the asked ids exist
 └── MalformedResponse        a body that is not the documented shape, or not JSON at all
      └── ResponseTooLarge    a body longer than AEP_MAX_RESPONSE_BYTES (reading stopped there)

Each class names its `kind` once: the audit outcome of a failed lookup, inherited by a family's
subclasses (an AepTimedOut is audited as "unavailable"), and its `cause`, which picks the words a
person reads (a subclass that says more than its family has its own).
"""

from __future__ import annotations

from typing import ClassVar, Literal

#: A failed lookup's audit outcome: one word per family of errors.
ErrorKind = Literal[
    "not_found",
    "too_many_identities",
    "rejected",
    "rate_limited",
    "unavailable",
    "credentials",
    "misconfigured",
    "malformed",
    "error",
]
#: What exactly happened, for the words: the family's kind, or a closer cause within it.
ErrorCause = ErrorKind | Literal["server_error", "unreachable", "sign_in_failed", "too_large"]


class AepError(Exception):
    """Root of every error the AEP client raises. `message` is safe to show a person."""

    kind: ClassVar[ErrorKind] = "error"
    cause: ClassVar[ErrorCause] = "error"
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

    kind: ClassVar[ErrorKind] = "not_found"
    cause: ClassVar[ErrorCause] = "not_found"


class TooManyIdentities(AepError):
    """The identity graph links more than 50 identities; Profile refuses the lookup."""

    kind: ClassVar[ErrorKind] = "too_many_identities"
    cause: ClassVar[ErrorCause] = "too_many_identities"


class LookupRejected(AepError):
    """Platform refused the request as malformed or unprocessable (400, other 422)."""

    kind: ClassVar[ErrorKind] = "rejected"
    cause: ClassVar[ErrorCause] = "rejected"


#: The longest wait a person is told in seconds: a longer (or absurd) Retry-After is "a few
#: minutes", since no one waits on a number of seconds they cannot picture.
TELL_SECONDS_UP_TO = 60.0


class RateLimited(AepError):
    """Platform asked us to slow down and the wait did not fit the lookup's deadline.

    `retry_after` is the wait Platform asked for, in seconds, already bounded by the parser
    (see sansio.RETRY_AFTER_CAP); None when it gave no usable advice.
    """

    kind: ClassVar[ErrorKind] = "rate_limited"
    cause: ClassVar[ErrorCause] = "rate_limited"

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

    def seconds_to_tell(self) -> int | None:
        """The wait to tell a person in seconds, or None to say "in a few minutes"."""
        return seconds_to_tell(self.retry_after)


def seconds_to_tell(wait: float | None) -> int | None:
    """A wait as a whole number of seconds to tell a person, or None to say "in a few
    minutes": only a small, plausible Retry-After is worth a number."""
    if wait is None or not 0 <= wait <= TELL_SECONDS_UP_TO:
        return None
    return max(1, round(wait))


class AepUnavailable(AepError):
    """No usable answer: raised as one of its subclasses, which say what happened."""

    kind: ClassVar[ErrorKind] = "unavailable"
    cause: ClassVar[ErrorCause] = "unavailable"


class AepServerError(AepUnavailable):
    """Platform answered, with a server error (5xx), on every attempt the deadline allowed."""

    cause: ClassVar[ErrorCause] = "server_error"


class AepTimedOut(AepUnavailable):
    """Platform did not answer within the time: a socket timeout or the lookup's deadline."""


class AepUnreachable(AepUnavailable):
    """The connection to Platform failed: refused, reset, closed mid-answer, or no such host."""

    cause: ClassVar[ErrorCause] = "unreachable"


class ImsUnavailable(AepUnavailable):
    """Adobe's sign-in service (IMS) answered with an error, did not answer, or was unreachable,
    so no token, and so no lookup. (IMS refusing the credentials is CredentialsProblem.)"""

    cause: ClassVar[ErrorCause] = "sign_in_failed"


class CredentialsProblem(AepError):
    """The bot's Adobe credentials were refused or lack a permission."""

    kind: ClassVar[ErrorKind] = "credentials"
    cause: ClassVar[ErrorCause] = "credentials"


class Misconfigured(AepError):
    """The bot is pointed at something Platform does not have: the gateway answered 404 with
    its own `error_code` body (a wrong AEP_API_URL path, region or sandbox), or the sandbox has
    no default merge policy and AEP_MERGE_POLICY_ID is unset. Never a fact about a customer, so
    never remembered as "not found"; `message` says what to check, for the log."""

    kind: ClassVar[ErrorKind] = "misconfigured"
    cause: ClassVar[ErrorCause] = "misconfigured"


class AudiencesNotFound(AepError):
    """An audience bulk-get answered 404 (`UPAPI-113000-404`): none of the ids asked for exist.
    The client turns it into "each of these ids is unknown"; it never reaches a person."""

    kind: ClassVar[ErrorKind] = "not_found"
    cause: ClassVar[ErrorCause] = "not_found"


class MalformedResponse(AepError):
    """Platform (or IMS) answered with a body the client cannot read: not JSON, nested past
    any real document, or not the documented shape."""

    kind: ClassVar[ErrorKind] = "malformed"
    cause: ClassVar[ErrorCause] = "malformed"


class ResponseTooLarge(MalformedResponse):
    """The answer's body ran past the size limit; the client stopped reading and dropped the
    connection rather than hold it in memory."""

    cause: ClassVar[ErrorCause] = "too_large"
