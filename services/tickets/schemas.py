"""What the tickets HTTP API accepts and answers (``API.md``, Tickets), as marshmallow
schemas: they validate requests and generate the OpenAPI document."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from services.tickets.queries import SCOPES
from shared.contract import STATUSES

ID = validate.Length(1, 100)
SUBJECT = validate.Length(1, 200)
LONG_TEXT = validate.Length(1, 20_000)
REASON = validate.Length(1, 5_000)
VISIBILITY = validate.OneOf(("public", "internal"))
PRIORITY = validate.Range(1, 5)
MAX_ATTACHMENTS = validate.Length(max=20)


def _text(length: validate.Length) -> fields.Str:
    return fields.Str(required=True, validate=length)


def _optional(length: validate.Length) -> fields.Str:
    return fields.Str(load_default=None, allow_none=True, validate=length)


def _uploads(what: str) -> fields.List:
    return fields.List(fields.Str(validate=ID), load_default=list, validate=MAX_ATTACHMENTS, metadata={
        "description": f"ids of the caller's uploads (POST /api/v1/attachments) {what}; 422 for an id that is"
                       " not one, 409 for a file already on another ticket"})


class NewTicket(Schema):
    category_id = _text(ID)
    subject = _text(SUBJECT)
    description = _text(LONG_TEXT)
    phone = _optional(validate.Length(max=30))
    priority = fields.Int(load_default=None, allow_none=True, strict=True, validate=PRIORITY)
    attachment_ids = _uploads("filed with the ticket, all or none")


class NewComment(Schema):
    body = _text(LONG_TEXT)
    visibility = fields.Str(load_default="public", validate=VISIBILITY)
    attachment_ids = _uploads("named by the comment; those not on the ticket yet join it with the comment's visibility")


class NewInvitation(Schema):
    user = fields.Str(required=True, validate=validate.Length(1, 320), metadata={"description": "login or email"})


class NewAttachment(Schema):
    attachment_id = fields.Str(required=True, validate=ID, metadata={
        "description": "the id of one of the caller's uploads; already on this ticket: nothing changes"})
    visibility = fields.Str(load_default="public", validate=VISIBILITY)


class Empty(Schema):
    pass


class Assign(Schema):
    assignee = fields.Str(required=True, validate=validate.Length(1, 320), metadata={"description": "login or email"})


class Release(Schema):
    reason = _optional(REASON)


class RequestInformation(Schema):
    question = _text(LONG_TEXT)


class Postpone(Schema):
    until = fields.AwareDateTime(load_default=None, allow_none=True)
    reason = _text(REASON)


class RequestClosure(Schema):
    resolution = _text(LONG_TEXT)


class ApproveClosure(Schema):
    rating = fields.Int(load_default=None, allow_none=True, strict=True, validate=PRIORITY)
    feedback = _optional(REASON)


class RefuseClosure(Schema):
    justification = _text(LONG_TEXT)


class OptionalReason(Schema):
    reason = _optional(REASON)


class RequiredReason(Schema):
    reason = _text(REASON)


class Move(Schema):
    category_id = _text(ID)


class ChangeSubject(Schema):
    subject = _text(SUBJECT)


class ChangePriority(Schema):
    priority = fields.Int(required=True, strict=True, validate=PRIORITY)


class ReturnToReferent(Schema):
    comment = _text(LONG_TEXT)


class RemoveAttachment(Schema):
    attachment_id = _text(ID)
    comment = _text(LONG_TEXT)


# API action name -> (domain action, body schema)
ACTIONS: dict[str, tuple[str, type[Schema]]] = {
    "take": ("take", Empty),
    "take-over": ("take_over", Empty),
    "assign": ("assign", Assign),
    "release": ("release", Release),
    "request-information": ("request_information", RequestInformation),
    "postpone": ("postpone", Postpone),
    "resume": ("resume", Empty),
    "request-closure": ("request_closure", RequestClosure),
    "approve-closure": ("approve_closure", ApproveClosure),
    "refuse-closure": ("refuse_closure", RefuseClosure),
    "close": ("close", Empty),
    "cancel": ("cancel", OptionalReason),
    "refuse": ("refuse", RequiredReason),
    "reopen": ("reopen", OptionalReason),
    "move": ("move", Move),
    "change-subject": ("change_subject", ChangeSubject),
    "change-priority": ("change_priority", ChangePriority),
    "escalate": ("escalate", RequiredReason),
    "return-to-referent": ("return_to_referent", ReturnToReferent),
    "remove-attachment": ("remove_attachment", RemoveAttachment),
}


class TicketListQuery(Schema):
    scope = fields.Str(load_default="mine", validate=validate.OneOf(SCOPES))
    status = fields.List(fields.Str(validate=validate.OneOf(sorted(STATUSES))), load_default=list)
    category_id = fields.Str(load_default=None, validate=ID)
    department_id = fields.Str(load_default=None, validate=ID)
    q = fields.Str(load_default=None, validate=validate.Length(1, 200))
    limit = fields.Int(load_default=20, validate=validate.Range(1, 100))
    cursor = fields.Str(load_default=None, validate=validate.Length(1, 500))


# -- answers (documentation only) --------------------------------------------------------


class Person(Schema):
    id = fields.Str(required=True)
    name = fields.Str(allow_none=True)
    email = fields.Str(allow_none=True)


class Labelled(Schema):
    id = fields.Str(required=True)
    label = fields.Str(required=True)


class CommentOut(Schema):
    id = fields.Str(required=True)
    author = fields.Nested(Person, required=True)
    body = fields.Str(required=True)
    visibility = fields.Str(required=True, validate=VISIBILITY)
    created_at = fields.Str(required=True)
    attachment_ids = fields.List(fields.Str(), required=True)


class AttachmentOut(Schema):
    id = fields.Str(required=True)
    filename = fields.Str(required=True)
    size = fields.Int(required=True)
    content_type = fields.Str(required=True)
    visibility = fields.Str(required=True, validate=VISIBILITY)


class Refusal(Schema):
    kind = fields.Str(required=True, validate=validate.OneOf(("closure", "ticket")), metadata={
        "description": "closure: the requester refused the proposed closure; ticket: a manager refused the ticket"})
    justification = fields.Str(required=True)
    by = fields.Nested(Person, required=True)
    at = fields.Str(required=True)


class TicketOut(Schema):
    id = fields.Str(required=True)
    number = fields.Int(required=True)
    subject = fields.Str(required=True)
    description = fields.Str(required=True)
    phone = fields.Str(allow_none=True)
    status = fields.Str(required=True, validate=validate.OneOf(sorted(STATUSES)))
    resolution = fields.Str(allow_none=True)
    priority = fields.Int(required=True)
    category = fields.Nested(Labelled, required=True)
    department = fields.Nested(Labelled, allow_none=True, required=True)
    establishment = fields.Str(allow_none=True)
    requester = fields.Nested(Person, required=True)
    assignee = fields.Nested(Person, allow_none=True, required=True)
    invitees = fields.List(fields.Nested(Person), required=True)
    watchers = fields.List(fields.Nested(Person), required=True)
    escalation = fields.Str(required=True, validate=validate.OneOf(("none", "requested", "escalated", "returned")))
    comments = fields.List(fields.Nested(CommentOut), required=True)
    attachments = fields.List(fields.Nested(AttachmentOut), required=True)
    rating = fields.Int(allow_none=True)
    created_at = fields.Str(required=True)
    updated_at = fields.Str(required=True)
    version = fields.Int(required=True)
    pending_question = fields.Str(allow_none=True, required=True, metadata={
        "description": "the question awaiting the requester's answer (WAITING_FOR_INFO), else null"})
    proposed_resolution = fields.Str(allow_none=True, required=True, metadata={
        "description": "the resolution the assignee proposed (CLOSURE_REQUESTED), kept once CLOSED; else null"})
    postponed_until = fields.Str(allow_none=True, required=True, metadata={
        "description": "POSTPONED: the recall date (ISO 8601), or null when postponed without a date"})
    last_refusal = fields.Nested(Refusal, allow_none=True, required=True, metadata={
        "description": "the latest refusal: of a proposed closure by the requester, or of the ticket by a manager"})
    allowed_actions = fields.List(fields.Str(), required=True)


class TicketPage(Schema):
    items = fields.List(fields.Nested(TicketOut), required=True)
    next_cursor = fields.Str(allow_none=True, required=True)


class HistoryEntry(Schema):
    id = fields.Str(required=True)
    type = fields.Str(required=True)
    version = fields.Int(required=True)
    occurred_at = fields.Str(required=True)
    actor = fields.Dict(required=True)
    status_before = fields.Str(allow_none=True)
    status_after = fields.Str(allow_none=True)
    data = fields.Dict(required=True)


class History(Schema):
    items = fields.List(fields.Nested(HistoryEntry), required=True)


class Problem(Schema):
    type = fields.Str(required=True)
    title = fields.Str(required=True)
    status = fields.Int(required=True)
    detail = fields.Str(required=True)
    errors = fields.Dict(keys=fields.Str(), values=fields.List(fields.Str()))
