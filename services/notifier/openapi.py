"""The OpenAPI document of the notifier HTTP API, generated from the same marshmallow
schemas that validate requests."""

from __future__ import annotations

from functools import cache
from typing import Any

from services.notifier import schemas
from shared.openapi import BEARER, base_spec, problems
from shared.openapi import json_content as _json

ENTRY_ID = {"name": "entry_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}


def _errors(*codes: int) -> dict[str, Any]:
    return problems(401, *codes)


@cache
def openapi_document() -> dict[str, Any]:
    spec = base_spec(
        "notifier",
        "The news feed of ticket events and notification preferences."
        " Errors are application/problem+json (RFC 9457).",
        (schemas.FeedPage, schemas.PreferencesOut, schemas.Problem),
    )
    spec.path("/api/v1/feed", operations={"get": {
        "summary": "the caller's news feed, newest first",
        "security": BEARER,
        "parameters": [{"in": "query", "schema": schemas.FeedQuery}],
        "responses": {"200": {"description": "a page of the feed", "content": _json("FeedPage")}, **_errors(422)},
    }})
    no_content = {"204": {"description": "done"}}
    spec.path("/api/v1/feed/{entry_id}/read", operations={"post": {
        "summary": "mark one entry of the caller's feed read",
        "security": BEARER,
        "parameters": [ENTRY_ID],
        "responses": {**no_content, **_errors(400, 404, 413, 415, 422)},
    }})
    spec.path("/api/v1/feed/read-all", operations={"post": {
        "summary": "mark every entry of the caller's feed read",
        "security": BEARER,
        "responses": {**no_content, **_errors(400, 413, 415, 422)},
    }})
    spec.path("/api/v1/preferences", operations={
        "get": {
            "summary": "the caller's language and the kinds of email they get",
            "security": BEARER,
            "responses": {"200": {"description": "preferences", "content": _json("PreferencesOut")}, **_errors()},
        },
        "put": {
            "summary": "change the language, turn kinds of email on or off",
            "description": "Kinds not named keep their setting; the feed always gets every entry.",
            "security": BEARER,
            "requestBody": {"required": True, "content": _json(schemas.PreferencesIn)},
            "responses": {"200": {"description": "preferences", "content": _json("PreferencesOut")},
                          **_errors(400, 413, 415, 422)},
        },
    })
    return spec.to_dict()
