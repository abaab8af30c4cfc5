"""What the reports API accepts and answers, as marshmallow schemas: they validate
queries and generate the OpenAPI document."""

from __future__ import annotations

from datetime import date
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.reporting.figures import GROUPS, PERIODS, RESOLUTIONS, STEPS, WAITING_STATUSES

# Days a report may be about: far enough back for any helpdesk's history, and clear of
# the calendar's ends (a period or its previous one around year 1 or 9999).
DAYS = validate.Range(min=date(2000, 1, 1), max=date(2100, 12, 31), error="a day from 2000-01-01 to 2100-12-31")
MAX_DAYS = 3 * 366  # a longer span is refused: three academic years is plenty to compare
_ID = validate.Length(1, 200)


class ReportQuery(Schema):
    """A period (``period`` and ``date``, or ``from`` and ``to``), filters and a grouping."""

    period = fields.Str(load_default="month", validate=validate.OneOf(PERIODS),
                        metadata={"description": "the period containing `date`; academic years start on 1 September"})
    date = fields.Date(load_default=None, validate=DAYS, metadata={"description": "a day of the period (default: today)"})
    from_ = fields.Date(data_key="from", load_default=None, validate=DAYS,
                        metadata={"description": "first day (with `to`, instead of `period`)"})
    to = fields.Date(load_default=None, validate=DAYS, metadata={"description": "last day, included"})
    department_id = fields.Str(load_default=None, validate=_ID)
    category_id = fields.Str(load_default=None, validate=_ID)
    establishment = fields.Str(load_default=None, validate=_ID, metadata={"description": "UAI"})
    manager = fields.Str(load_default=None, validate=_ID, metadata={"description": "a manager's login"})
    group_by = fields.Str(load_default=None, validate=validate.OneOf(GROUPS))
    format = fields.Str(load_default=None, validate=validate.OneOf(("json", "csv")),
                        metadata={"description": "instead of the Accept header (a download link)"})

    @validates_schema
    def _dates(self, data: dict[str, Any], **kwargs: Any) -> None:
        first, last = data.get("from_"), data.get("to")
        if (first is None) != (last is None):
            raise ValidationError("give both `from` and `to`, or neither", "from" if first is None else "to")
        if first is not None and last is not None:
            if last < first:
                raise ValidationError("`to` must not come before `from`", "to")
            if (last - first).days + 1 > MAX_DAYS:
                raise ValidationError(f"at most {MAX_DAYS} days", "to")


class CategoriesQuery(ReportQuery):
    limit = fields.Int(load_default=10, validate=validate.Range(1, 50),
                       metadata={"description": "subject terms per category"})


class TimelineQuery(ReportQuery):
    step = fields.Str(load_default=None, validate=validate.OneOf(STEPS),
                      metadata={"description": "default: days up to a month, weeks up to half a year, else months"})


class PeriodOut(Schema):
    kind = fields.Str(required=True, metadata={"description": "day, week, month, academic-year or dates"})
    from_ = fields.Date(data_key="from", required=True)
    to = fields.Date(required=True, metadata={"description": "last day, included"})
    timezone = fields.Str(required=True)


class Durations(Schema):
    count = fields.Int(required=True)
    median_hours = fields.Float(required=True, allow_none=True)
    p90_hours = fields.Float(required=True, allow_none=True)
    median_working_hours = fields.Float(required=True, allow_none=True)
    p90_working_hours = fields.Float(required=True, allow_none=True)


class StatusTime(Durations):
    total_hours = fields.Float(required=True)
    total_working_hours = fields.Float(required=True)


class EscalationFigures(Schema):
    escalated = fields.Int(required=True, metadata={"description": "tickets created in the period since escalated"})
    rate = fields.Float(required=True, allow_none=True, metadata={"description": "escalated / created"})
    median_hours = fields.Float(required=True, allow_none=True, metadata={"description": "from creation"})
    p90_hours = fields.Float(required=True, allow_none=True)
    median_working_hours = fields.Float(required=True, allow_none=True)
    p90_working_hours = fields.Float(required=True, allow_none=True)


class Satisfaction(Schema):
    approvals = fields.Int(required=True, metadata={"description": "closures approved in the period"})
    ratings = fields.Int(required=True)
    average = fields.Float(required=True, allow_none=True)
    distribution = fields.Dict(keys=fields.Str(), values=fields.Int(), required=True,
                               metadata={"description": "ratings 1 to 5: how many of each"})
    with_feedback = fields.Int(required=True)
    feedback_share = fields.Float(required=True, allow_none=True)


class Figures(Schema):
    created = fields.Int(required=True)
    resolved = fields.Int(required=True, metadata={"description": "tickets reaching a final status in the period"})
    backlog_start = fields.Int(required=True, metadata={"description": "not resolved at the period's start"})
    backlog_end = fields.Int(required=True, metadata={"description": "not resolved at the period's end"})
    resolutions = fields.Dict(keys=fields.Str(validate=validate.OneOf(RESOLUTIONS)), values=fields.Int(),
                              required=True)
    first_response = fields.Nested(Durations, required=True,
                                   metadata={"description": "from creation to a manager's first response"})
    resolution = fields.Nested(Durations, required=True, metadata={"description": "from creation to resolution"})
    status_time = fields.Dict(keys=fields.Str(validate=validate.OneOf(WAITING_STATUSES)),
                              values=fields.Nested(StatusTime), required=True,
                              metadata={"description": "periods in each status that ended in the period"})
    reopened = fields.Int(required=True)
    reopen_rate = fields.Float(required=True, allow_none=True, metadata={"description": "reopened / resolved"})
    escalation = fields.Nested(EscalationFigures, required=True)
    satisfaction = fields.Nested(Satisfaction, required=True)


class Group(Schema):
    key = fields.Str(required=True, allow_none=True, metadata={"description": "null: none (not routed, unassigned)"})
    label = fields.Str(required=True)
    figures = fields.Nested(Figures, required=True)


class Summary(Schema):
    period = fields.Nested(PeriodOut, required=True)
    filters = fields.Dict(required=True)
    group_by = fields.Str(required=True, allow_none=True)
    total = fields.Nested(Figures, required=True)
    groups = fields.List(fields.Nested(Group), required=True)


class Term(Schema):
    term = fields.Str(required=True)
    stem = fields.Str(required=True)
    tickets = fields.Int(required=True)


class CategoryVolume(Schema):
    category_id = fields.Str(required=True, allow_none=True)
    label = fields.Str(required=True)
    created = fields.Int(required=True)
    previous = fields.Int(required=True, metadata={"description": "created in the previous period"})
    trend = fields.Float(required=True, allow_none=True, metadata={"description": "(created - previous) / previous"})
    terms = fields.List(fields.Nested(Term), required=True)


class Categories(Schema):
    period = fields.Nested(PeriodOut, required=True)
    previous_period = fields.Nested(PeriodOut, required=True)
    filters = fields.Dict(required=True)
    items = fields.List(fields.Nested(CategoryVolume), required=True)


class Step(Schema):
    from_ = fields.Date(data_key="from", required=True)
    to = fields.Date(required=True)
    created = fields.Int(required=True)
    resolved = fields.Int(required=True)
    first_responses = fields.Int(required=True)
    first_response_median_hours = fields.Float(required=True, allow_none=True)
    first_response_median_working_hours = fields.Float(required=True, allow_none=True)
    resolution_median_hours = fields.Float(required=True, allow_none=True)
    resolution_median_working_hours = fields.Float(required=True, allow_none=True)


class Timeline(Schema):
    period = fields.Nested(PeriodOut, required=True)
    step = fields.Str(required=True, validate=validate.OneOf(STEPS))
    filters = fields.Dict(required=True)
    items = fields.List(fields.Nested(Step), required=True, metadata={"description": "every step, in order"})


class Problem(Schema):
    type = fields.Str(required=True)
    title = fields.Str(required=True)
    status = fields.Int(required=True)
    detail = fields.Str(required=True)
    errors = fields.Dict(keys=fields.Str(), values=fields.List(fields.Str()))
