"""What the escalation HTTP API accepts and answers (``API.md``, "Escalations"), as
marshmallow schemas: they validate requests and generate the OpenAPI document."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

STATUSES = ("escalated", "refused", "returned")
UAI = validate.Regexp(r"^[A-Za-z0-9]{1,20}$", error="an establishment's UAI: letters and digits, at most 20")


class StrictBool(fields.Bool):
    """A JSON true or false; not "yes", "true" or 1."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class SettingsIn(Schema):
    """An admin's settings for one establishment."""

    enabled = StrictBool(required=True, metadata={"description": "whether its referents may escalate"})
    support_department_id = fields.Str(
        required=True, validate=validate.Length(1, 100),
        metadata={"description": "the central support department (a global department of routing)"},
    )
    first_response_hours = fields.Int(
        load_default=None, allow_none=True, strict=True, validate=validate.Range(1, 8760),
        metadata={"description": "escalate by itself a referents' ticket nobody handled within this many working hours"
                                 " (opening hours on working days, WORKING_HOURS);"
                                 " null: never"},
    )


class SettingsOut(Schema):
    establishment = fields.Str(required=True)
    enabled = fields.Bool(required=True)
    support_department_id = fields.Str(required=True)
    first_response_hours = fields.Int(required=True, allow_none=True)
    configured = fields.Bool(required=True, metadata={"description": "false: the defaults (no settings saved)"})


class EscalationQuery(Schema):
    status = fields.List(fields.Str(validate=validate.OneOf(STATUSES)), load_default=list)
    limit = fields.Int(load_default=20, validate=validate.Range(1, 100))
    cursor = fields.Str(load_default=None, validate=validate.Length(1, 200))


class Person(Schema):
    id = fields.Str(required=True)
    name = fields.Str(required=True, allow_none=True)


class TicketRef(Schema):
    id = fields.Str(required=True)
    number = fields.Int(required=True, allow_none=True)
    subject = fields.Str(required=True, allow_none=True)
    status = fields.Str(required=True, allow_none=True)


class EscalationOut(Schema):
    id = fields.Str(required=True)
    ticket = fields.Nested(TicketRef, required=True)
    establishment = fields.Str(required=True, allow_none=True)
    referent_department_id = fields.Str(required=True)
    support_department_id = fields.Str(required=True, allow_none=True)
    status = fields.Str(required=True, validate=validate.OneOf(STATUSES))
    automatic = fields.Bool(required=True)
    reason = fields.Str(required=True)
    refusal_reason = fields.Str(required=True, allow_none=True)
    requested_by = fields.Nested(Person, required=True)
    requested_at = fields.DateTime(required=True)
    decided_at = fields.DateTime(required=True)
    returned_at = fields.DateTime(required=True, allow_none=True)
    returned_by = fields.Nested(Person, required=True, allow_none=True)


class EscalationPage(Schema):
    items = fields.List(fields.Nested(EscalationOut), required=True)
    next_cursor = fields.Str(required=True, allow_none=True)


class Problem(Schema):
    type = fields.Str(required=True)
    title = fields.Str(required=True)
    status = fields.Int(required=True)
    detail = fields.Str(required=True)
    errors = fields.Dict(keys=fields.Str(), values=fields.List(fields.Str()))
