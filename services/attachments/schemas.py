"""What the attachments HTTP API answers (``API.md``, Attachments), as marshmallow
schemas for its OpenAPI document. Uploads are multipart, not JSON: ``upload`` reads them."""

from __future__ import annotations

from marshmallow import Schema, fields


class AttachmentOut(Schema):
    id = fields.Str(required=True, metadata={"format": "uuid"})
    filename = fields.Str(required=True, metadata={"description": "the name as sent, cleaned of paths and control characters"})
    size = fields.Int(required=True, metadata={"description": "bytes"})
    content_type = fields.Str(required=True, metadata={"description": "read from the bytes, not from the client"})
    sha256 = fields.Str(required=True)


class Problem(Schema):
    type = fields.Str(required=True)
    title = fields.Str(required=True)
    status = fields.Int(required=True)
    detail = fields.Str(required=True)
    errors = fields.Dict(keys=fields.Str(), values=fields.List(fields.Str()))
