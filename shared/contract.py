"""What crosses service boundaries: the one module services share instead of each other's insides.

- The ticket statuses and their open / final sets (``docs`` and ``WORKFLOW.md``).
- The names of the ticket events (their payload schemas are ``shared.events``).
- The errors that travel over RPC, each with its class (``shared.failures``): all the
  ones here are *permanent* (a refusal that retrying would not change);
  ``shared.failures.TransientFailure`` is the one transient error that crosses, and
  ``TRANSIENT`` / ``PERMANENT`` below list them for callers that sort failures.

Every error is registered with Nameko's ``deserialize_to_instance`` on import, so a
caller that imports this module gets the error back as itself rather than as a
``RemoteError``; their ``args`` are their constructor's, so Nameko can rebuild them.
A service raises these very classes (``services.tickets.domain`` and
``services.attachments.errors`` re-export them), so the name Nameko sends is the name
the caller registered.
"""

from __future__ import annotations

from nameko.exceptions import deserialize_to_instance

from shared.failures import DependencyUnavailable, TransientFailure
from shared.idempotency import IdempotencyKeyReused

# --- ticket statuses ------------------------------------------------------------------

FREE = "FREE"
IN_PROGRESS = "IN_PROGRESS"
WAITING_FOR_INFO = "WAITING_FOR_INFO"
POSTPONED = "POSTPONED"
CLOSURE_REQUESTED = "CLOSURE_REQUESTED"
CLOSED = "CLOSED"
CANCELLED = "CANCELLED"
REFUSED = "REFUSED"

OPEN = frozenset({FREE, IN_PROGRESS, WAITING_FOR_INFO, POSTPONED})
FINAL = frozenset({CLOSED, CANCELLED, REFUSED})
STATUSES = OPEN | FINAL | {CLOSURE_REQUESTED}
NOT_FINAL = STATUSES - FINAL

# --- ticket events (routing key = event type on the ``tickets.events`` exchange) --------

EVENT_TYPES = frozenset(
    {
        "TicketSubmitted",
        "TicketRouted",
        "TicketAssigned",
        "TicketReleased",
        "CommentAdded",
        "InformationRequested",
        "InformationProvided",
        "TicketPostponed",
        "TicketResumed",
        "ClosureRequested",
        "ClosureApproved",
        "ClosureRefused",
        "ClosureExpired",
        "TicketClosedByOwner",
        "TicketCancelled",
        "TicketRefused",
        "TicketReopened",
        "TicketMoved",
        "UserInvited",
        "InvitationRevoked",
        "WatchStarted",
        "WatchStopped",
        "AttachmentAdded",
        "AttachmentRemoved",
        "SubjectChanged",
        "PriorityChanged",
        "EscalationRequested",
        "EscalationRefused",
        "TicketEscalated",
        "TicketReturnedToReferent",
    }
)

# --- the tickets service's errors ------------------------------------------------------


class DomainError(Exception):
    """An action refused by the ticket's rules; nothing was appended."""

    def __init__(self, action: str, status: str | None, reason: str) -> None:
        # args are the constructor's, so the error can be rebuilt across an RPC call.
        super().__init__(action, status, reason)
        self.action = action
        self.status = status
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.action} refused (status {self.status}): {self.reason}"


class Forbidden(DomainError):
    """The actor may see the ticket but may not do this (HTTP 403)."""


class InvalidTransition(DomainError):
    """The action is not allowed in the ticket's status (HTTP 409)."""


class InvalidArgument(DomainError):
    """An argument breaks a rule, e.g. a blank justification (HTTP 422)."""

    def __init__(self, action: str, status: str | None, field_name: str, reason: str) -> None:
        super().__init__(action, status, reason)
        self.args = (action, status, field_name, reason)
        self.field = field_name


class TicketNotFound(Exception):
    """Unknown, or invisible to the caller: the two look the same (HTTP 404)."""

    def __init__(self, ticket_ref: object) -> None:
        super().__init__(str(ticket_ref))
        self.ticket_ref = ticket_ref


class Conflict(Exception):
    """The ticket kept changing under the command (HTTP 409)."""


class VersionMismatch(Exception):
    """``If-Match`` named a version the ticket is no longer at (HTTP 412)."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(expected, actual)
        self.expected = expected
        self.actual = actual

    def __str__(self) -> str:
        return f"the ticket is at version {self.actual}, not {self.expected}"


class UnknownUser(Exception):
    """A login or email that nobody has used yet (HTTP 422)."""

    def __init__(self, reason: str, field: str = "user") -> None:
        super().__init__(reason, field)
        self.reason = reason
        self.field = field

    def __str__(self) -> str:
        return self.reason


# --- the attachments service's errors --------------------------------------------------


class UnknownAttachment(Exception):
    """No such upload for this caller: unknown, someone else's, removed or expired (they
    look the same, so ids cannot be probed)."""

    def __init__(self, attachment_id: str) -> None:
        super().__init__(attachment_id)
        self.attachment_id = attachment_id

    def __str__(self) -> str:
        return f"unknown attachment {self.attachment_id!r}"


class AttachmentInUse(Exception):
    """The upload is already attached to (or being attached to) another ticket.

    ``stale``: the other ticket's claim is pending and past its lease, so the caller may
    take it over once it has checked the file is not on that ticket.
    """

    def __init__(self, attachment_id: str, ticket_id: str, stale: bool = False) -> None:
        super().__init__(attachment_id, ticket_id, stale)
        self.attachment_id = attachment_id
        self.ticket_id = ticket_id
        self.stale = stale

    def __str__(self) -> str:
        return f"attachment {self.attachment_id!r} is already attached to another ticket"


# What each service's RPC methods declare as ``expected_exceptions`` (a refusal, not a bug).
TICKETS_ERRORS: tuple[type[Exception], ...] = (
    DomainError,
    TicketNotFound,
    Conflict,
    VersionMismatch,
    IdempotencyKeyReused,
    UnknownUser,
)
ATTACHMENTS_ERRORS: tuple[type[Exception], ...] = (UnknownAttachment, AttachmentInUse)

# Their class (``shared.failures``): a permanent error will fail the same way again.
PERMANENT: tuple[type[Exception], ...] = (
    Forbidden,
    InvalidTransition,
    InvalidArgument,
    *TICKETS_ERRORS,
    *ATTACHMENTS_ERRORS,
)
TRANSIENT: tuple[type[Exception], ...] = (TransientFailure, DependencyUnavailable)

for _error in PERMANENT:
    deserialize_to_instance(_error)
