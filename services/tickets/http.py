"""The tickets HTTP API for ENT frontends (``API.md``: Identity, Errors, Tickets).

Each handler authenticates the caller, validates the body with a schema of
``services.tickets.schemas``, calls the service layer and serialises the ticket. Errors
become problem+json through the table in ``TicketsApiHandler``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid4, uuid5

import structlog
from werkzeug.wrappers import Request, Response

from services.tickets import commands as cmd
from services.tickets import domain, schemas
from services.tickets.openapi import openapi_document
from services.tickets.queries import InvalidCursor, TicketQueries
from shared import contract, idempotency
from shared.auth import Identity, TokenVerifier
from shared.config import Settings
from shared.contract import AttachmentInUse, UnknownAttachment
from shared.failures import circuit
from shared.nameko_deps import ServiceRpc
from shared.web import ApiHandler, HttpProblem, ServiceProbes, json_response, load_query, read_json, readiness


class TicketsApiHandler(ApiHandler):
    errors = (
        (cmd.TicketNotFound, 404),
        (contract.Forbidden, 403),
        (contract.InvalidArgument, 422),
        (contract.InvalidTransition, 409),
        (cmd.Conflict, 409),
        (cmd.VersionMismatch, 412),
        (cmd.IdempotencyKeyReused, 422),
        (cmd.UnknownUser, 422),
        (InvalidCursor, 422),
    )


http = TicketsApiHandler.decorator

log = structlog.stdlib.get_logger("guichet.tickets")

SYSTEM = domain.Actor.system("tickets")
# A ticket filed with an Idempotency-Key gets an id derived from it, so a repeat claims
# its uploads for the same ticket (a claim is idempotent per ticket).
TICKET_IDS = uuid5(NAMESPACE_URL, "https://guichet/tickets/idempotency-key")
COMMENT_IDS = uuid5(NAMESPACE_URL, "https://guichet/tickets/comments/idempotency-key")


class UserDirectory:
    """Every identity seen, so users can be invited or assigned by login or email.

    Written only when someone is new or their name, email or establishment changed.
    """

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self._known: dict[str, Identity] = {}
        self._lock = threading.Lock()

    def remember(self, identity: Identity) -> None:
        if self._known.get(identity.login) == identity:
            return
        with self.pool.connection() as conn:
            conn.execute(
                """
                INSERT INTO tickets.users (id, name, email, establishment) VALUES (%s, %s, %s, %s)
                ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, email = EXCLUDED.email,
                    establishment = EXCLUDED.establishment, seen_at = now()
                """,
                (identity.login, identity.name, identity.email, identity.establishment),
            )
        with self._lock:
            self._known[identity.login] = identity


class TicketsBackend:
    """What the tickets service's workers get: commands, queries, identity."""

    def __init__(self, pool: Any, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.pool = pool
        self.commands = cmd.TicketCommands(pool)
        self.queries = TicketQueries(pool, self.commands.clock)
        self.users = UserDirectory(pool)
        self.verifier = TokenVerifier(self.settings)

    def actor(self, request: Request) -> domain.Actor:
        identity = self.verifier.verify(request.headers.get("Authorization"))
        self.users.remember(identity)
        return domain.Actor(
            id=identity.login,
            name=identity.name,
            email=identity.email,
            admin=identity.is_admin,
            establishment=identity.establishment,
        )

    def ready(self) -> dict[str, str]:
        checks = readiness(self.pool, self.settings.amqp_uri)
        return checks


def _if_match(request: Request) -> int | None:
    value = request.headers.get("If-Match")
    if value is None:
        return None
    version = value.strip().removeprefix("W/").strip('"')
    if not version.isascii() or not version.isdigit() or len(version) > 9:
        raise HttpProblem(400, 'If-Match must be a ticket version, e.g. "3"')
    return int(version)


def _correlation_id(request: Request) -> str | None:
    """A caller's ``X-Correlation-Id`` (to follow one request through every service's
    logs and events), if it is a sane one."""
    value = request.headers.get("X-Correlation-Id")
    if value and len(value) <= 100 and value.isprintable():
        return value
    return None


def _ticket_response(ticket: dict[str, Any], status: int = 200, **headers: str) -> Response:
    return json_response(ticket, status, {"ETag": f'"{ticket["version"]}"', **headers})


def _upload_ids(ids: list[str], field: str) -> list[str]:
    """The uploads named by a request, canonical and without repeats; an id that cannot
    be an upload's is unknown (422)."""
    found: list[str] = []
    for value in ids:
        try:
            canonical = str(UUID(value))
        except ValueError:
            raise HttpProblem(422, "unknown attachment", {field: [f"unknown attachment {value!r}"]}) from None
        if canonical not in found:
            found.append(canonical)
    return found


def _attachments_rpc(method: Callable[..., Any], *args: Any) -> Any:
    # A short timeout, then a circuit open a few seconds: 503 + Retry-After at once
    # while attachments is down, instead of every creation holding a worker 15 s.
    return circuit("attachments").call(method, *args)


def _actor_ref(actor: domain.Actor) -> dict[str, Any]:
    return {"id": actor.id, "name": actor.name, "email": actor.email, "kind": actor.kind}


def _attach_args(upload: dict[str, Any], visibility: str) -> dict[str, Any]:
    return {"attachment_id": upload["id"], "filename": upload["filename"], "size": upload["size"],
            "content_type": upload["content_type"], "visibility": visibility}


class TicketsHttp(ServiceProbes):
    """HTTP entrypoints of the tickets service (mixed into ``TicketsService``; their
    names must not clash with its RPC methods)."""

    backend: TicketsBackend
    attachments = ServiceRpc("attachments")

    openapi_document = staticmethod(openapi_document)

    @http("POST", "/api/v1/tickets")
    def create_ticket(self, request: Request) -> Response:
        actor = self.backend.actor(request)
        body = read_json(request, schemas.NewTicket())
        ids = _upload_ids(body.pop("attachment_ids"), "attachment_ids")
        key = idempotency.key_of(request)
        ticket_id = str(uuid5(TICKET_IDS, f"{actor.id}\n{key}")) if key is not None else str(uuid4())
        # The uploads are claimed first, then the ticket and its AttachmentAdded events
        # are appended together: the ticket is filed with all its files, or not at all.
        uploads, claimed = self._claim_uploads(actor, ticket_id, ids, "public", "attachment_ids")
        steps = [("submit", body)] + [("attach", _attach_args(u, "public")) for u in uploads]
        try:
            ticket = self.backend.commands.execute_steps(
                steps, actor, idempotency_key=key, correlation_id=_correlation_id(request), new_ticket_id=ticket_id
            )
        except BaseException:
            self._release_uploads(actor, ticket_id, claimed)
            raise
        return _ticket_response(ticket, 201, Location=f"/api/v1/tickets/{ticket['id']}")

    @http("GET", "/api/v1/tickets")
    def list_tickets(self, request: Request) -> Response:
        actor = self.backend.actor(request)
        args = {k: request.args.getlist(k) if k == "status" else request.args.get(k) for k in request.args}
        query = load_query(schemas.TicketListQuery(), args)
        page = self.backend.queries.list(
            actor,
            scope=query["scope"],
            statuses=query["status"],
            category_id=query["category_id"],
            department_id=query["department_id"],
            q=query["q"],
            limit=query["limit"],
            cursor=query["cursor"],
        )
        return json_response(page)

    @http("GET", "/api/v1/tickets/<ticket>")
    def get_ticket(self, request: Request, ticket: str) -> Response:
        return _ticket_response(self.backend.commands.get(self.backend.actor(request), ticket))

    @http("GET", "/api/v1/tickets/<ticket>/history")
    def ticket_history(self, request: Request, ticket: str) -> Response:
        return json_response({"items": self.backend.commands.history(self.backend.actor(request), ticket)})

    @http("POST", "/api/v1/tickets/<ticket>/comments")
    def add_comment(self, request: Request, ticket: str) -> Response:
        actor = self.backend.actor(request)
        body = read_json(request, schemas.NewComment())
        key = idempotency.key_of(request)
        # A repeat with the same key names the same comment, so its fingerprint matches.
        body["comment_id"] = str(uuid5(COMMENT_IDS, f"{actor.id}\n{key}")) if key is not None else cmd.new_id()
        body["attachment_ids"] = ids = _upload_ids(body["attachment_ids"], "attachment_ids")
        if not ids:
            return self._act(request, "comment", actor, ticket, body, status=201)
        # Files not yet on the ticket join it with the comment that names them, in one append.
        current = self.backend.commands.get(actor, ticket)  # unknown or invisible: 404 first
        on_ticket = {a["id"] for a in current["attachments"]}
        new = [i for i in ids if i not in on_ticket]
        uploads, claimed = self._claim_uploads(actor, current["id"], new, body["visibility"], "attachment_ids")
        steps = [("attach", _attach_args(u, body["visibility"])) for u in uploads] + [("comment", body)]
        try:
            result = self.backend.commands.execute_steps(
                steps, actor, current["id"], expected_version=_if_match(request),
                correlation_id=_correlation_id(request), idempotency_key=key,
                # the steps depend on which files are already on the ticket; the request does not
                request=("comment", {**body, "attachment_ids": ids}),
            )
        except BaseException:
            self._release_uploads(actor, current["id"], claimed)
            raise
        return _ticket_response(result, 201)

    @http("POST", "/api/v1/tickets/<ticket>/actions/<action>")
    def perform_action(self, request: Request, ticket: str, action: str) -> Response:
        actor = self.backend.actor(request)
        if action not in schemas.ACTIONS:
            raise HttpProblem(404, f"no action {action!r}; actions: {', '.join(schemas.ACTIONS)}")
        domain_action, schema = schemas.ACTIONS[action]
        return self._act(request, domain_action, actor, ticket, read_json(request, schema()))

    @http("POST", "/api/v1/tickets/<ticket>/invitations")
    def post_invitation(self, request: Request, ticket: str) -> Response:
        actor = self.backend.actor(request)
        body = read_json(request, schemas.NewInvitation())
        return self._act(request, "invite", actor, ticket, {"user": body["user"]}, status=201)

    @http("DELETE", "/api/v1/tickets/<ticket>/invitations/<user>")
    def delete_invitation(self, request: Request, ticket: str, user: str) -> Response:
        actor = self.backend.actor(request)
        read_json(request, schemas.Empty())  # no body, or an empty JSON object
        return self._act(request, "uninvite", actor, ticket, {"user_id": user})

    @http("PUT", "/api/v1/tickets/<ticket>/watchers/<user>")
    def put_watcher(self, request: Request, ticket: str, user: str) -> Response:
        actor = self.backend.actor(request)
        read_json(request, schemas.Empty())  # no body, or an empty JSON object
        args = {} if user in ("me", actor.id) else {"user": user}
        return self._act(request, "watch", actor, ticket, args)

    @http("DELETE", "/api/v1/tickets/<ticket>/watchers/<user>")
    def delete_watcher(self, request: Request, ticket: str, user: str) -> Response:
        actor = self.backend.actor(request)
        read_json(request, schemas.Empty())  # no body, or an empty JSON object
        return self._act(request, "unwatch", actor, ticket, {"user_id": actor.id if user == "me" else user})

    @http("POST", "/api/v1/tickets/<ticket>/attachments")
    def post_attachment(self, request: Request, ticket: str) -> Response:
        actor = self.backend.actor(request)
        body = read_json(request, schemas.NewAttachment())
        current = self.backend.commands.get(actor, ticket)  # unknown or invisible: 404 first
        [attachment_id] = _upload_ids([body["attachment_id"]], "attachment_id")
        if any(a["id"] == attachment_id for a in current["attachments"]):
            return _ticket_response(current, 201)  # already there: nothing to do
        uploads, claimed = self._claim_uploads(actor, current["id"], [attachment_id], body["visibility"], "attachment_id")
        try:
            return self._act(request, "attach", actor, current["id"], _attach_args(uploads[0], body["visibility"]),
                             status=201)
        except contract.InvalidTransition:
            # A twin request attached it first: the same answer as if this one had.
            again = self.backend.commands.get(actor, ticket)
            if any(a["id"] == attachment_id for a in again["attachments"]):
                return _ticket_response(again, 201)
            self._release_uploads(actor, current["id"], claimed)
            raise
        except BaseException:
            self._release_uploads(actor, current["id"], claimed)
            raise

    # -- uploads joining a ticket, judged by the attachments service

    def _claim_uploads(
        self, actor: domain.Actor, ticket_id: str, ids: list[str], visibility: str, field: str
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Claim the caller's uploads for the ticket: their metadata, and the ids this
        call newly claimed (to release if the ticket refuses them). All or none."""
        uploads: list[dict[str, Any]] = []
        claimed: list[str] = []
        try:
            for attachment_id in ids:
                upload = self._claim_upload(actor, ticket_id, attachment_id, visibility, field)
                uploads.append(upload)
                if upload.get("claimed_now"):
                    claimed.append(attachment_id)
        except BaseException:
            self._release_uploads(actor, ticket_id, claimed)
            raise
        return uploads, claimed

    def _claim_upload(
        self, actor: domain.Actor, ticket_id: str, attachment_id: str, visibility: str, field: str
    ) -> dict[str, Any]:
        claim = self.attachments.claim
        try:
            try:
                return _attachments_rpc(claim, _actor_ref(actor), attachment_id, ticket_id, visibility)
            except AttachmentInUse as exc:
                # A claim left pending by a request that never appended its AttachmentAdded
                # (a crash) is taken over once past its lease, if the file is truly not there.
                if not exc.stale or self.backend.commands.attachment_access(SYSTEM, exc.ticket_id, attachment_id)[
                        "attached"]:
                    raise
                return _attachments_rpc(claim, _actor_ref(actor), attachment_id, ticket_id, visibility, exc.ticket_id)
        except UnknownAttachment:
            raise HttpProblem(422, "unknown attachment", {
                field: [f"unknown attachment {attachment_id!r}: upload it first (POST /api/v1/attachments);"
                        " only its uploader may attach it"]}) from None
        except AttachmentInUse:
            raise HttpProblem(409, "this file is already attached to another ticket", {
                field: [f"attachment {attachment_id!r} is already attached to another ticket; upload it again"]}) from None

    def _release_uploads(self, actor: domain.Actor, ticket_id: str, ids: list[str]) -> None:
        """Best effort: a claim not released now is taken over after its lease."""
        for attachment_id in ids:
            try:
                _attachments_rpc(self.attachments.release, _actor_ref(actor), attachment_id, ticket_id)
            except Exception as exc:  # noqa: BLE001 - the request's own error matters more
                log.warning("claim not released", attachment_id=attachment_id, ticket_id=ticket_id, error=repr(exc))

    def _act(
        self, request: Request, action: str, actor: domain.Actor, ticket: str, args: dict[str, Any], status: int = 200
    ) -> Response:
        result = self.backend.commands.execute(
            action, actor, ticket, args, expected_version=_if_match(request), correlation_id=_correlation_id(request),
            idempotency_key=idempotency.key_of(request),
        )
        return _ticket_response(result, status)
