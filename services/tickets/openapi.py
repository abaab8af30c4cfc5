"""The OpenAPI document of the tickets HTTP API, generated from the same marshmallow
schemas that validate requests."""

from __future__ import annotations

from functools import cache
from typing import Any

from services.tickets import schemas
from shared.openapi import BEARER, PROBLEM, base_spec, problems

TICKET_ID = {"name": "ticket", "in": "path", "required": True, "schema": {"type": "string"},
             "description": "the ticket's uuid or its number"}
IF_MATCH = {"name": "If-Match", "in": "header", "required": False,
            "schema": {"type": "string", "pattern": r'^(W/)?"?[0-9]{1,9}"?$'},
            "description": 'the version the change was decided on, e.g. "3" (the ETag of the ticket)'}


def _errors(*codes: int) -> dict[str, Any]:
    return problems(400, 401, 413, 415, 422, *codes)


def _json(schema: str | type) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ticket_answer(status: int, *codes: int) -> dict[str, Any]:
    return {str(status): {"description": "the ticket", "content": _json("TicketOut")}, **_errors(404, *codes)}


def _change(summary: str, body: type | None, status: int = 200, *, if_match: bool = True) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "security": BEARER,
        "parameters": [TICKET_ID] + ([IF_MATCH] if if_match else []),
        "responses": _ticket_answer(status, 403, 409, 412),
    }
    if body is not None:
        # A body whose fields are all optional may be left out altogether.
        required = any(f.required for f in body._declared_fields.values())  # type: ignore[attr-defined]
        operation["requestBody"] = {"required": required, "content": _json(body)}
    return operation


def _with_uploads(operation: dict[str, Any]) -> dict[str, Any]:
    """An operation naming uploads: 422 not an upload of the caller's, 409 already on
    another ticket, 503 the attachments service does not answer."""
    operation["responses"]["503"] = {"description": "problem", "content": PROBLEM}
    return operation


@cache
def openapi_document() -> dict[str, Any]:
    spec = base_spec(
        "tickets",
        "Tickets for ENT frontends. Errors are application/problem+json (RFC 9457).",
        (schemas.TicketOut, schemas.TicketPage, schemas.History, schemas.Problem),
    )
    spec.path("/api/v1/tickets", operations={
        "post": {
            "summary": "file a ticket",
            "security": BEARER,
            "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                            "schema": {"type": "string", "minLength": 1, "maxLength": 200}}],
            "requestBody": {"required": True, "content": _json(schemas.NewTicket)},
            "responses": {"201": {"description": "the ticket", "content": _json("TicketOut")}, **_errors(409, 503)},
        },
        "get": {
            "summary": "tickets the caller may see, newest activity first",
            "security": BEARER,
            "parameters": [{"in": "query", "schema": schemas.TicketListQuery}],
            "responses": {"200": {"description": "a page", "content": _json("TicketPage")}, **_errors()},
        },
    })
    spec.path("/api/v1/tickets/{ticket}", operations={"get": {
        "summary": "one ticket", "security": BEARER, "parameters": [TICKET_ID],
        "responses": _ticket_answer(200)}})
    spec.path("/api/v1/tickets/{ticket}/history", operations={"get": {
        "summary": "the ticket's events, oldest first", "security": BEARER, "parameters": [TICKET_ID],
        "responses": {"200": {"description": "history", "content": _json("History")}, **_errors(404)}}})
    spec.path("/api/v1/tickets/{ticket}/comments", operations={
        "post": _with_uploads(_change("comment", schemas.NewComment, 201))})
    for name, (_, body) in schemas.ACTIONS.items():
        spec.path(f"/api/v1/tickets/{{ticket}}/actions/{name}", operations={
            "post": _change(name.replace("-", " "), body)})
    spec.path("/api/v1/tickets/{ticket}/invitations", operations={
        "post": _change("invite a user", schemas.NewInvitation, 201)})
    user = {"name": "user", "in": "path", "required": True, "schema": {"type": "string"}}
    spec.path("/api/v1/tickets/{ticket}/invitations/{user}", operations={
        "delete": {**_change("revoke an invitation", None), "parameters": [TICKET_ID, user, IF_MATCH]}})
    watcher = {**user, "description": "a login, or me"}
    spec.path("/api/v1/tickets/{ticket}/watchers/{user}", operations={
        "put": {**_change("follow the ticket by email", None), "parameters": [TICKET_ID, watcher, IF_MATCH]},
        "delete": {**_change("stop following", None), "parameters": [TICKET_ID, watcher, IF_MATCH]},
    })
    spec.path("/api/v1/tickets/{ticket}/attachments", operations={
        "post": _with_uploads(_change("attach an uploaded file", schemas.NewAttachment, 201))})
    return spec.to_dict()
