"""The tickets Nameko service: one RPC method per ticket action, plus reads.

Every call names its actor explicitly (a dict: ``id``, ``name``, ``email``, ``kind``
``user`` or ``system``, ``admin``, ``establishment``) and may carry options:
``idempotency_key`` (a repeat returns the first result and appends nothing),
``expected_version`` (fail with ``VersionMismatch`` instead of deciding on a newer
ticket), ``correlation_id`` and ``causation_id`` (the event that caused the call).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate
from nameko.events import event_handler

from services.tickets import catalogue_copy, domain
from services.tickets import commands as cmd
from services.tickets.http import TicketsBackend, TicketsHttp
from services.tickets.rpc_errors import EXPECTED
from shared import contract
from shared.catalogue_copy import REVISION_SQL
from shared.nameko_deps import CatalogueRequest, DatabasePool, OutboxRelayRunner, rpc

OPTIONS = frozenset({"idempotency_key", "expected_version", "correlation_id", "causation_id"})


class ActorSchema(Schema):
    id = fields.Str(required=True, validate=validate.Length(1, 200))
    name = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=200))
    email = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=320))
    kind = fields.Str(load_default="user", validate=validate.OneOf(("user", "system")))
    admin = fields.Bool(load_default=False)
    establishment = fields.Str(load_default=None, allow_none=True, validate=validate.Length(max=20))


def parse_actor(actor: Any) -> domain.Actor:
    try:
        return domain.Actor(**ActorSchema().load(actor))
    except (ValidationError, TypeError) as exc:
        raise contract.InvalidArgument("call", None, "actor", f"invalid actor: {exc}") from None


class TicketsService(TicketsHttp):
    name = "tickets"

    backend: TicketsBackend = DatabasePool(TicketsBackend, max_size=20)
    relay = OutboxRelayRunner("tickets")
    # Routing announces its teams again if this copy missed the last announcement.
    catalogue_request = CatalogueRequest(REVISION_SQL.format(schema="tickets"))

    def _do(self, action: str, actor: Any, ticket: Any, options: dict[str, Any], **args: Any) -> dict[str, Any]:
        unknown = set(options) - OPTIONS
        if unknown:
            raise contract.InvalidArgument(action, None, "options", f"unknown options: {sorted(unknown)}")
        return self.backend.commands.execute(action, parse_actor(actor), ticket, args, **options)

    @rpc(expected_exceptions=EXPECTED)
    def submit(self, actor, category_id, subject, description, phone=None, priority=None, **options):
        return self._do(
            "submit", actor, None, options,
            category_id=category_id, subject=subject, description=description, phone=phone, priority=priority,
        )

    @rpc(expected_exceptions=EXPECTED)
    def comment(self, actor, ticket, body, visibility="public", attachment_ids=(), comment_id=None, **options):
        return self._do(
            "comment", actor, ticket, options, comment_id=comment_id or cmd.new_id(),
            body=body, visibility=visibility, attachment_ids=attachment_ids,
        )

    @rpc(expected_exceptions=EXPECTED)
    def take(self, actor, ticket, **options):
        return self._do("take", actor, ticket, options)

    @rpc(expected_exceptions=EXPECTED)
    def take_over(self, actor, ticket, **options):
        return self._do("take_over", actor, ticket, options)

    @rpc(expected_exceptions=EXPECTED)
    def assign(self, actor, ticket, assignee, **options):
        return self._do("assign", actor, ticket, options, assignee=assignee)

    @rpc(expected_exceptions=EXPECTED)
    def release(self, actor, ticket, reason=None, **options):
        return self._do("release", actor, ticket, options, reason=reason)

    @rpc(expected_exceptions=EXPECTED)
    def request_information(self, actor, ticket, question, **options):
        return self._do("request_information", actor, ticket, options, question=question)

    @rpc(expected_exceptions=EXPECTED)
    def postpone(self, actor, ticket, reason, until=None, **options):
        return self._do("postpone", actor, ticket, options, reason=reason, until=_datetime("postpone", until))

    @rpc(expected_exceptions=EXPECTED)
    def resume(self, actor, ticket, **options):
        return self._do("resume", actor, ticket, options)

    @rpc(expected_exceptions=EXPECTED)
    def request_closure(self, actor, ticket, resolution, **options):
        return self._do("request_closure", actor, ticket, options, resolution=resolution)

    @rpc(expected_exceptions=EXPECTED)
    def approve_closure(self, actor, ticket, rating=None, feedback=None, **options):
        return self._do("approve_closure", actor, ticket, options, rating=rating, feedback=feedback)

    @rpc(expected_exceptions=EXPECTED)
    def refuse_closure(self, actor, ticket, justification, **options):
        return self._do("refuse_closure", actor, ticket, options, justification=justification)

    @rpc(expected_exceptions=EXPECTED)
    def expire_closure(self, actor, ticket, **options):
        return self._do("expire_closure", actor, ticket, options)

    @rpc(expected_exceptions=EXPECTED)
    def close(self, actor, ticket, **options):
        return self._do("close", actor, ticket, options)

    @rpc(expected_exceptions=EXPECTED)
    def cancel(self, actor, ticket, reason=None, **options):
        return self._do("cancel", actor, ticket, options, reason=reason)

    @rpc(expected_exceptions=EXPECTED)
    def refuse(self, actor, ticket, reason, **options):
        return self._do("refuse", actor, ticket, options, reason=reason)

    @rpc(expected_exceptions=EXPECTED)
    def reopen(self, actor, ticket, reason=None, **options):
        return self._do("reopen", actor, ticket, options, reason=reason)

    @rpc(expected_exceptions=EXPECTED)
    def move(self, actor, ticket, category_id, **options):
        return self._do("move", actor, ticket, options, category_id=category_id)

    @rpc(expected_exceptions=EXPECTED)
    def route(self, actor, ticket, department_id, **options):
        return self._do("route", actor, ticket, options, department_id=department_id)

    @rpc(expected_exceptions=EXPECTED)
    def invite(self, actor, ticket, user, **options):
        return self._do("invite", actor, ticket, options, user=user)

    @rpc(expected_exceptions=EXPECTED)
    def uninvite(self, actor, ticket, user, **options):
        return self._do("uninvite", actor, ticket, options, user_id=user)

    @rpc(expected_exceptions=EXPECTED)
    def watch(self, actor, ticket, user=None, **options):
        return self._do("watch", actor, ticket, options, user=user)

    @rpc(expected_exceptions=EXPECTED)
    def unwatch(self, actor, ticket, user=None, **options):
        return self._do("unwatch", actor, ticket, options, user_id=user)

    @rpc(expected_exceptions=EXPECTED)
    def attach(self, actor, ticket, attachment_id, filename, size, content_type, visibility="public", **options):
        return self._do(
            "attach", actor, ticket, options, attachment_id=attachment_id, filename=filename,
            size=size, content_type=content_type, visibility=visibility,
        )

    @rpc(expected_exceptions=EXPECTED)
    def remove_attachment(self, actor, ticket, attachment_id, comment, **options):
        return self._do("remove_attachment", actor, ticket, options, attachment_id=attachment_id, comment=comment)

    @rpc(expected_exceptions=EXPECTED)
    def change_subject(self, actor, ticket, subject, **options):
        return self._do("change_subject", actor, ticket, options, subject=subject)

    @rpc(expected_exceptions=EXPECTED)
    def change_priority(self, actor, ticket, priority, **options):
        return self._do("change_priority", actor, ticket, options, priority=priority)

    @rpc(expected_exceptions=EXPECTED)
    def escalate(self, actor, ticket, reason, **options):
        return self._do("escalate", actor, ticket, options, reason=reason)

    @rpc(expected_exceptions=EXPECTED)
    def escalate_to(self, actor, ticket, department_id, reason=None, **options):
        return self._do("escalate_to", actor, ticket, options, department_id=department_id, reason=reason)

    @rpc(expected_exceptions=EXPECTED)
    def return_to_referent(self, actor, ticket, comment, **options):
        return self._do("return_to_referent", actor, ticket, options, comment=comment)

    @rpc(expected_exceptions=EXPECTED)
    def refuse_escalation(self, actor, ticket, reason, **options):
        return self._do("refuse_escalation", actor, ticket, options, reason=reason)

    # -- the copy of routing's teams and categories

    @event_handler("routing", "CatalogueChanged", requeue_on_error=True)
    def on_catalogue_changed(self, snapshot: dict[str, Any]) -> None:
        with self.backend.pool.connection() as conn:
            applied = catalogue_copy.apply_snapshot(conn, snapshot)
        if applied:
            # Someone removed from a team no longer handles nor watches its tickets.
            self.backend.commands.recheck_access()

    @event_handler("escalation", "EscalableTeamsChanged", requeue_on_error=True)
    def on_escalable_teams(self, announcement: dict[str, Any]) -> None:
        """Where escalation can succeed now: ``escalate`` is offered only there."""
        with self.backend.pool.connection() as conn, conn.transaction():
            conn.execute("LOCK TABLE tickets.escalable_known")
            row = conn.execute("SELECT at FROM tickets.escalable_known").fetchone()
            at = datetime.fromisoformat(announcement["at"])
            if row is not None and row["at"] >= at:
                return  # an older announcement arriving late
            conn.execute("DELETE FROM tickets.escalable_teams")
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO tickets.escalable_teams (team) VALUES (%s) ON CONFLICT DO NOTHING",
                                [(t,) for t in announcement["teams"]])
            conn.execute("INSERT INTO tickets.escalable_known (singleton, at) VALUES (true, %s)"
                         " ON CONFLICT (singleton) DO UPDATE SET at = EXCLUDED.at", (at,))

    # -- reads

    @rpc(expected_exceptions=EXPECTED)
    def get(self, actor, ticket):
        return self.backend.commands.get(parse_actor(actor), ticket)

    @rpc(expected_exceptions=EXPECTED)
    def history(self, actor, ticket):
        return self.backend.commands.history(parse_actor(actor), ticket)

    @rpc(expected_exceptions=EXPECTED)
    def can_view(self, actor, ticket):
        return self.backend.commands.can_view(parse_actor(actor), ticket)

    @rpc(expected_exceptions=EXPECTED)
    def attachment_access(self, actor, ticket, attachment_id):
        """For the attachments service: ``{"attached", "visible"}`` of a file on a ticket."""
        return self.backend.commands.attachment_access(parse_actor(actor), ticket, attachment_id)


def _datetime(action: str, value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise contract.InvalidArgument(action, None, "until", "until is an ISO 8601 date and time") from None
