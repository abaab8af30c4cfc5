"""The OpenAPI document of the escalation HTTP API, generated from the same marshmallow
schemas that validate requests."""

from __future__ import annotations

from functools import cache
from typing import Any

from services.escalation import schemas
from shared.openapi import BEARER, base_spec, problems
from shared.openapi import json_content as _json

UAI = {"name": "uai", "in": "path", "required": True,
       "schema": {"type": "string", "pattern": "^[A-Za-z0-9]{1,20}$"}, "description": "the establishment's UAI"}


def _errors(*codes: int) -> dict[str, Any]:
    return problems(401, *codes)


@cache
def openapi_document() -> dict[str, Any]:
    spec = base_spec(
        "escalation",
        "Escalations from an establishment's ENT referents to the central support, and each"
                             " establishment's escalation settings. Errors are application/problem+json (RFC 9457).",
        (schemas.EscalationPage, schemas.SettingsOut, schemas.Problem),
    )
    spec.path("/api/v1/escalations", operations={"get": {
        "summary": "the escalations the caller handles, newest first",
        "description": "An establishment's referents: their establishment's; the central support: those sent to"
                       " its department; admins: all.",
        "security": BEARER,
        "parameters": [{"in": "query", "schema": schemas.EscalationQuery}],
        "responses": {"200": {"description": "a page of escalations", "content": _json("EscalationPage")},
                      **_errors(403, 422)},
    }})
    spec.path("/api/v1/establishments/{uai}/escalation", operations={
        "get": {
            "summary": "admin: an establishment's escalation settings (the defaults if none were saved)",
            "security": BEARER,
            "parameters": [UAI],
            "responses": {"200": {"description": "the settings", "content": _json("SettingsOut")},
                          **_errors(403, 404)},
        },
        "put": {
            "summary": "admin: set an establishment's escalation settings",
            "security": BEARER,
            "parameters": [UAI],
            "requestBody": {"required": True, "content": _json(schemas.SettingsIn)},
            "responses": {"200": {"description": "the settings", "content": _json("SettingsOut")},
                          **_errors(400, 403, 404, 413, 415, 422)},
        },
    })
    return spec.to_dict()
