"""The escalation HTTP API (``API.md``, "Escalations").

Each handler authenticates the caller (``shared.auth``), checks their role against the
service's copy of routing's teams, validates input with ``services.escalation.schemas``
and reads or writes the escalation schema through ``services.escalation.storage``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from marshmallow import ValidationError
from nameko import config
from werkzeug.wrappers import Request, Response

from services.escalation import rules, schemas, storage
from services.escalation.openapi import openapi_document
from shared.auth import Identity, TokenVerifier
from shared.config import Settings
from shared.idempotency import Responses
from shared.web import ApiHandler, HttpProblem, ServiceProbes, json_response, load_query, read_json, readiness


class EscalationApiHandler(ApiHandler):
    errors = ((storage.InvalidCursor, 422),)


http = EscalationApiHandler.decorator


def default_support_department() -> str:
    """The central support department of establishments without settings."""
    return str(config.get("ESCALATION_SUPPORT_DEPARTMENT") or os.environ.get("ESCALATION_SUPPORT_DEPARTMENT")
               or rules.DEFAULT_SUPPORT_DEPARTMENT)


class EscalationBackend:
    """What the escalation service's workers get: the database pool and identity."""

    def __init__(self, pool: Any, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.pool = pool
        self.responses = Responses(pool, "escalation")
        self.verifier = TokenVerifier(self.settings)
        self.default_support = default_support_department()

    def identity(self, request: Request) -> Identity:
        return self.verifier.verify(request.headers.get("Authorization"))

    def admin(self, request: Request) -> Identity:
        identity = self.identity(request)
        if not identity.is_admin:
            raise HttpProblem(403, "only an admin may read or change an establishment's escalation settings")
        return identity

    def ready(self) -> dict[str, str]:
        checks = readiness(self.pool, config.get("AMQP_URI") or self.settings.amqp_uri)
        return checks

    # -- reads and writes

    def escalations(self, identity: Identity, query: dict[str, Any]) -> dict[str, Any]:
        with self.pool.connection() as conn:
            catalogue = storage.load_catalogue(conn)
            establishments = catalogue.referent_establishments(identity.login)
            support = catalogue.managed_teams(identity.login) & storage.support_departments(conn, self.default_support)
            if not (identity.is_admin or establishments or support):
                raise HttpProblem(403, "only ENT referents, the central support and admins handle escalations")
            return storage.list_escalations(
                conn, everything=identity.is_admin, establishments=establishments, support_teams=support,
                statuses=query["status"], limit=query["limit"], cursor=query["cursor"],
            )

    def establishment_settings(self, uai: str) -> dict[str, Any]:
        with self.pool.connection() as conn:
            row = storage.settings_row(conn, uai)
            return rules.settings_for(uai, row, storage.load_catalogue(conn), self.default_support).view()

    def save_settings(self, identity: Identity, uai: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.pool.connection() as conn:
            catalogue = storage.load_catalogue(conn)
            support = body["support_department_id"]
            team = catalogue.teams.get(support)
            if catalogue.known and (team is None or team.per_establishment):
                raise HttpProblem(422, "some fields are invalid", errors={"support_department_id": [
                    f"no global department {support!r} in routing's configuration"]})
            storage.save_settings(conn, uai, body, identity.login)
        return self.establishment_settings(uai)


def _uai(uai: str) -> str:
    try:
        schemas.UAI(uai)
    except ValidationError:  # not a UAI, so no such establishment
        raise HttpProblem(404, "no establishment with this UAI") from None
    return uai


def _query(request: Request) -> dict[str, Any]:
    values: dict[str, Any] = {key: request.args.get(key) for key in request.args}
    values["status"] = request.args.getlist("status")
    return load_query(schemas.EscalationQuery(), values)


class EscalationHttp(ServiceProbes):
    """HTTP entrypoints of the escalation service (mixed into ``EscalationService``)."""

    backend: EscalationBackend
    announce_escalable_teams: Callable[[], None]  # the service's: where escalation succeeds now

    openapi_document = staticmethod(openapi_document)

    @http("GET", "/api/v1/escalations")
    def list_escalations(self, request: Request) -> Response:
        identity = self.backend.identity(request)
        return json_response(self.backend.escalations(identity, _query(request)))

    @http("GET", "/api/v1/establishments/<uai>/escalation")
    def get_settings(self, request: Request, uai: str) -> Response:
        self.backend.admin(request)
        return json_response(self.backend.establishment_settings(_uai(uai)))

    @http("PUT", "/api/v1/establishments/<uai>/escalation")
    def put_settings(self, request: Request, uai: str) -> Response:
        identity = self.backend.admin(request)
        uai = _uai(uai)
        body = read_json(request, schemas.SettingsIn())
        def save() -> Response:
            saved = json_response(self.backend.save_settings(identity, uai, body))
            self.announce_escalable_teams()
            return saved

        return self.backend.responses.run(request, identity.login, "put_settings", uai, body, save)
