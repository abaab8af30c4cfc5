"""Ticket events: one marshmallow schema per event type, the message envelope, and the
ticket summary every message carries.

A schema is used both to write an event (``dump_data``: Python values -> JSON) and to
read it back (``load_data``: JSON -> Python values, after upcasting old versions).
A change that breaks old events bumps ``SCHEMA_VERSIONS[type]`` and registers an
upcaster from the previous version in ``UPCASTERS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import Schema, fields, validate

EXCHANGE = "tickets.events"  # Nameko's "<service>.events" convention; routing key = event type

VISIBILITIES = ("public", "internal")
ESCALATIONS = ("none", "requested", "escalated", "returned")


class UserRef(Schema):
    id = fields.Str(required=True)
    name = fields.Str(required=True, allow_none=True)
    email = fields.Str(required=True, allow_none=True)


def _text(**kwargs: Any) -> fields.Str:
    return fields.Str(required=True, **kwargs)


def _optional_text() -> fields.Str:
    return fields.Str(load_default=None, dump_default=None, allow_none=True)


def _user(required: bool = True) -> fields.Nested:
    if required:
        return fields.Nested(UserRef, required=True)
    return fields.Nested(UserRef, load_default=None, allow_none=True)


class TicketSubmitted(Schema):
    ticket_id = _text()
    number = fields.Int(required=True)
    subject = _text()
    description = _text()
    phone = _optional_text()
    priority = fields.Int(required=True, validate=validate.Range(1, 5))
    category_id = _text()
    establishment = _optional_text()
    requester = _user()


class TicketRouted(Schema):
    department_id = _text()
    previous_department_id = _optional_text()


class TicketAssigned(Schema):
    assignee = _user()
    previous_assignee = _user(required=False)
    taken = fields.Bool(required=True)


class TicketReleased(Schema):
    previous_assignee = _user()
    reason = _optional_text()
    # Released by the system after a change of team (the assignee can no longer see the
    # ticket): routing then applies the department's policy again.
    automatic = fields.Bool(load_default=False)


class CommentAdded(Schema):
    comment_id = _text()
    body = _text()
    visibility = _text(validate=validate.OneOf(VISIBILITIES))
    attachment_ids = fields.List(fields.Str(), load_default=list)


class InformationRequested(Schema):
    question = _text()


class InformationProvided(Schema):
    comment_id = _text()


class TicketPostponed(Schema):
    until = fields.AwareDateTime(load_default=None, allow_none=True)
    reason = _text()


class TicketResumed(Schema):
    automatic = fields.Bool(required=True)


class ClosureRequested(Schema):
    resolution = _text()


class ClosureApproved(Schema):
    rating = fields.Int(load_default=None, allow_none=True, validate=validate.Range(1, 5))
    feedback = _optional_text()


class ClosureRefused(Schema):
    justification = _text()


class ClosureExpired(Schema):
    pass


class TicketClosedByOwner(Schema):
    pass


class TicketCancelled(Schema):
    reason = _optional_text()


class TicketRefused(Schema):
    reason = _text()


class TicketReopened(Schema):
    reason = _optional_text()
    assignee = _user(required=False)


class TicketMoved(Schema):
    category_id = _text()
    previous_category_id = _text()


class UserInvited(Schema):
    user = _user()


class InvitationRevoked(Schema):
    user = _user()


class WatchStarted(Schema):
    user = _user()
    admin = fields.Bool(load_default=False)  # watched as an admin (who sees every ticket)


class WatchStopped(Schema):
    user = _user()


class AttachmentAdded(Schema):
    attachment_id = _text()
    filename = _text()
    size = fields.Int(required=True, validate=validate.Range(min=0))
    content_type = _text()
    visibility = _text(validate=validate.OneOf(VISIBILITIES))


class AttachmentRemoved(Schema):
    attachment_id = _text()
    comment = _text()


class SubjectChanged(Schema):
    subject = _text()
    previous_subject = _text()


class PriorityChanged(Schema):
    priority = fields.Int(required=True, validate=validate.Range(1, 5))
    previous_priority = fields.Int(required=True)


class EscalationRequested(Schema):
    reason = _text()


class EscalationRefused(Schema):
    reason = _text()


class TicketEscalated(Schema):
    department_id = _text()
    referent_department_id = _optional_text()
    reason = _optional_text()


class TicketReturnedToReferent(Schema):
    department_id = _text()
    comment = _text()


EVENT_SCHEMAS: dict[str, Schema] = {
    cls.__name__: cls()
    for cls in (
        TicketSubmitted, TicketRouted, TicketAssigned, TicketReleased, CommentAdded,
        InformationRequested, InformationProvided, TicketPostponed, TicketResumed,
        ClosureRequested, ClosureApproved, ClosureRefused, ClosureExpired,
        TicketClosedByOwner, TicketCancelled, TicketRefused, TicketReopened, TicketMoved,
        UserInvited, InvitationRevoked, WatchStarted, WatchStopped, AttachmentAdded,
        AttachmentRemoved, SubjectChanged, PriorityChanged, EscalationRequested,
        TicketEscalated, TicketReturnedToReferent, EscalationRefused,
    )
}

# Current schema version of each event type; every type is at its first version.
SCHEMA_VERSIONS: dict[str, int] = {name: 1 for name in EVENT_SCHEMAS}

# (event type, version it upgrades from) -> function turning that version's data into
# the next version's. Empty until a schema changes incompatibly.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


class UnknownEventType(ValueError):
    pass


def _schema(event_type: str) -> Schema:
    try:
        return EVENT_SCHEMAS[event_type]
    except KeyError:
        raise UnknownEventType(event_type) from None


def encode_data(event_type: str, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An event's data as stored (JSON-ready) and as readers will read it back.

    Loading what was dumped refuses data the readers could not read, and gives the
    writer exactly the values a replay will see.
    """
    schema = _schema(event_type)
    stored = schema.dump(data)
    return stored, schema.load(stored)


def load_data(event_type: str, schema_version: int, data: dict[str, Any]) -> dict[str, Any]:
    """Read stored event data at any past version into current Python values."""
    schema = _schema(event_type)
    for version in range(schema_version, SCHEMA_VERSIONS[event_type]):
        data = UPCASTERS[(event_type, version)](data)
    loaded: dict[str, Any] = schema.load(data)
    return loaded


# --- what each person may see of an event (WORKFLOW.md, "Who sees what") ---------------
# The one rule the tickets history, the notifier's emails and its feed all apply.

# Events between managers only: a referent's request to escalate and the answer to it.
INTERNAL_EVENTS = frozenset({"EscalationRequested", "EscalationRefused"})
# Events everybody on the ticket may know of, but whose text is for managers only: the
# escalation's reason, the support's note when it returns the ticket.
INTERNAL_FIELDS: dict[str, tuple[str, ...]] = {
    "TicketEscalated": ("reason",),
    "TicketReturnedToReferent": ("comment",),
}


def visible_data(
    event_type: str, data: dict[str, Any], *, sees_internal: bool, attachment_visibility: str | None = None
) -> dict[str, Any] | None:
    """``data`` as someone sees it, or None when they may not see the event at all.

    ``sees_internal`` is True for the ticket's managers and admins; for
    ``AttachmentRemoved``, ``attachment_visibility`` is the removed file's (unknown counts
    as internal)."""
    if sees_internal:
        return data
    if event_type in INTERNAL_EVENTS:
        return None
    if event_type in ("CommentAdded", "AttachmentAdded") and data.get("visibility") != "public":
        return None
    if event_type == "AttachmentRemoved" and attachment_visibility != "public":
        return None
    hidden = INTERNAL_FIELDS.get(event_type, ())
    return {k: v for k, v in data.items() if k not in hidden} if hidden else data


class AudienceMember(Schema):
    """Someone who may see the ticket right after the event (computed by the tickets
    service from its rules and its copy of the teams at the time of the event)."""

    id = _text()
    name = fields.Str(load_default=None, allow_none=True)
    email = fields.Str(load_default=None, allow_none=True)
    internal = fields.Bool(required=True)  # sees internal content: a manager of the ticket
    teams = fields.List(fields.Str(), load_default=list)  # the ticket's teams they manage


class ActorSchema(Schema):
    id = _text()
    name = fields.Str(required=True, allow_none=True)
    kind = _text(validate=validate.OneOf(("user", "system")))


class TicketSummarySchema(Schema):
    """The ticket *after* the event, so consumers need no call back for the common case."""

    id = _text()
    number = fields.Int(required=True)
    subject = _text()
    status = _text()
    category_id = _text()
    department_id = fields.Str(required=True, allow_none=True)
    establishment = fields.Str(required=True, allow_none=True)
    requester = _user()
    assignee = fields.Nested(UserRef, required=True, allow_none=True)
    escalation = _text(validate=validate.OneOf(ESCALATIONS))
    version = fields.Int(required=True)


class EventMessageSchema(Schema):
    """The body of every message on the ``tickets.events`` exchange."""

    event_id = _text()
    event_type = _text()
    schema_version = fields.Int(required=True)
    stream_id = _text()
    stream_version = fields.Int(required=True)
    global_position = fields.Int(required=True)
    occurred_at = fields.Str(required=True)
    actor = fields.Nested(ActorSchema, required=True)
    correlation_id = fields.Str(required=True, allow_none=True)
    causation_id = fields.Str(required=True, allow_none=True)
    data = fields.Dict(required=True)
    ticket = fields.Nested(TicketSummarySchema, required=True)
    # Everyone who may see the ticket right after the event; absent from older messages.
    audience = fields.List(fields.Nested(AudienceMember), load_default=None, allow_none=True)
    # The W3C trace context of the command that wrote the event (shared.tracing); absent
    # when tracing is off and from older messages.
    traceparent = fields.Str(load_default=None, allow_none=True)
