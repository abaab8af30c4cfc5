"""What the notifier HTTP API accepts and answers (``API.md``, "News feed and
preferences"), as marshmallow schemas: they validate requests and generate the OpenAPI
document."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from services.notifier.recipients import NOTIFYING_EVENTS
from services.notifier.texts import LANGUAGES

# The kinds of email a person may turn off: the ticket event types anyone is told of.
EMAIL_KINDS = tuple(sorted(NOTIFYING_EVENTS))


class StrictBool(fields.Bool):
    """A JSON true or false; not "yes", "true" or 1."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class QueryBool(fields.Bool):
    """``true`` or ``false`` in a query string, nothing else."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if value not in ("true", "false"):
            raise self.make_error("invalid")
        return value == "true"


class FeedQuery(Schema):
    unread = QueryBool(load_default=False, metadata={"description": "true: only the unread entries"})
    limit = fields.Int(load_default=20, validate=validate.Range(1, 100))
    cursor = fields.Str(load_default=None, validate=validate.Length(1, 200),
                        metadata={"description": "next_cursor of the previous page"})


class PreferencesIn(Schema):
    """A change of preferences: the language, and kinds of email turned on or off (the
    kinds not named keep their setting)."""

    language = fields.Str(validate=validate.OneOf(LANGUAGES))
    email = fields.Dict(
        keys=fields.Str(validate=validate.OneOf(EMAIL_KINDS, error="unknown kind of email")),
        values=StrictBool(),
        metadata={"description": "event kind -> whether it is emailed (the feed always gets the entry)"},
    )


class Empty(Schema):
    pass


# -- answers (documentation only) --------------------------------------------------------


class PreferencesOut(Schema):
    language = fields.Str(required=True, validate=validate.OneOf(LANGUAGES))
    email = fields.Dict(keys=fields.Str(validate=validate.OneOf(EMAIL_KINDS)), values=fields.Bool(), required=True)


class FeedEntry(Schema):
    id = fields.Str(required=True)
    ticket_id = fields.Str(required=True)
    ticket_number = fields.Int(required=True)
    event_type = fields.Str(required=True)
    summary = fields.Str(required=True, metadata={"description": "in the reader's language (preferences)"})
    created_at = fields.DateTime(required=True)
    read = fields.Bool(required=True)


class FeedPage(Schema):
    items = fields.List(fields.Nested(FeedEntry), required=True)
    unread = fields.Int(required=True, metadata={"description": "all the reader's unread entries"})
    next_cursor = fields.Str(required=True, allow_none=True)


class Problem(Schema):
    type = fields.Str(required=True)
    title = fields.Str(required=True)
    status = fields.Int(required=True)
    detail = fields.Str(required=True)
    errors = fields.Dict(keys=fields.Str(), values=fields.List(fields.Str()))
