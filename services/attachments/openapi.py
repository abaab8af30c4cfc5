"""The OpenAPI document of the attachments HTTP API."""

from __future__ import annotations

from functools import cache
from typing import Any

from services.attachments import schemas
from shared.openapi import BEARER, base_spec, problems


def _errors(*codes: int) -> dict[str, Any]:
    return problems(401, *codes)


@cache
def openapi_document() -> dict[str, Any]:
    spec = base_spec(
        "attachments",
        "Files joined to tickets: upload, then name the file's id when filing a ticket,"
        " commenting or attaching. Errors are application/problem+json (RFC 9457).",
        (schemas.AttachmentOut, schemas.Problem),
        ready="database, broker and storage reachable",
    )
    spec.path("/api/v1/attachments", operations={"post": {
        "summary": "upload a file (images, PDF, office documents, plain text, archives)",
        "description": "The type is read from the bytes. Files never attached to a ticket are removed after 24 hours.",
        "security": BEARER,
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary"}},
        }}}},
        "responses": {
            "201": {"description": "the upload", "content": {"application/json": {"schema": "AttachmentOut"}}},
            **_errors(400, 413, 415, 422),
        },
    }})
    spec.path("/api/v1/attachments/{attachment_id}", operations={"get": {
        "summary": "download a file: its uploader before it is attached, then whoever may see it on its ticket",
        "security": BEARER,
        "parameters": [{"name": "attachment_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {
            "200": {"description": "the bytes, with Content-Disposition: attachment",
                    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
            **_errors(404, 503),
        },
    }})
    return spec.to_dict()
