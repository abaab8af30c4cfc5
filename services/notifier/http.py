"""The notifier HTTP API (``API.md``, "News feed and preferences").

Each handler authenticates the caller (their token's ``sub`` is the login the events
name), validates the query or body with ``services.notifier.schemas`` and reads or
changes the caller's own feed and preferences: nobody reads another's.
"""

from __future__ import annotations

import threading
from typing import Any

from nameko import config
from werkzeug.wrappers import Request, Response

from services.notifier import schemas, storage
from services.notifier.mail import MailRenderer
from services.notifier.openapi import openapi_document
from services.notifier.recipients import Person
from shared.auth import Identity, TokenVerifier
from shared.config import Settings
from shared.idempotency import Responses
from shared.web import ApiHandler, HttpProblem, ServiceProbes, json_response, load_query, read_json, readiness


class NotifierApiHandler(ApiHandler):
    errors = ((storage.InvalidCursor, 422),)


http = NotifierApiHandler.decorator


class NotifierBackend:
    """What the notifier's workers get: the database pool, identity, the mail renderer."""

    def __init__(self, pool: Any, settings: Settings | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.pool = pool
        self.responses = Responses(pool, "notifier")
        self.verifier = TokenVerifier(self.settings)
        public_url = config.get("PUBLIC_URL") or self.settings.public_url
        self.renderer = MailRenderer(public_url, config.get("MAIL_FROM"))
        self._known: dict[str, Identity] = {}
        self._lock = threading.Lock()

    def identity(self, request: Request) -> Identity:
        """The caller; their name and address join the directory (the freshest source)."""
        identity = self.verifier.verify(request.headers.get("Authorization"))
        if self._known.get(identity.login) != identity:
            with self.pool.connection() as conn:
                storage.remember_people(conn, [Person(identity.login, identity.name, identity.email)])
            with self._lock:
                self._known[identity.login] = identity
        return identity

    def ready(self) -> dict[str, str]:
        checks = readiness(self.pool, config.get("AMQP_URI") or self.settings.amqp_uri)
        return checks


def preferences_view(prefs: storage.Preferences) -> dict[str, Any]:
    return {"language": prefs.language, "email": {kind: kind not in prefs.email_off for kind in schemas.EMAIL_KINDS}}


class NotifierHttp(ServiceProbes):
    """HTTP entrypoints of the notifier (mixed into ``NotifierService``)."""

    backend: NotifierBackend

    openapi_document = staticmethod(openapi_document)

    @http("GET", "/api/v1/feed")
    def get_feed(self, request: Request) -> Response:
        identity = self.backend.identity(request)
        query = load_query(schemas.FeedQuery(), request.args.to_dict())
        with self.backend.pool.connection() as conn:
            page = storage.feed(conn, identity.login, unread_only=query["unread"], limit=query["limit"],
                                cursor=query["cursor"])
        return json_response(page, headers={"Cache-Control": "no-store"})

    @http("POST", "/api/v1/feed/<entry_id>/read")
    def read_entry(self, request: Request, entry_id: str) -> Response:
        identity = self.backend.identity(request)
        read_json(request, schemas.Empty())  # no body, or an empty JSON object

        def mark_read() -> Response:
            with self.backend.pool.connection() as conn:
                if not storage.mark_read(conn, identity.login, entry_id):
                    raise HttpProblem(404, "no such entry in your feed")
            return Response(status=204)

        return self.backend.responses.run(request, identity.login, "read_entry", entry_id, {}, mark_read)

    @http("POST", "/api/v1/feed/read-all")
    def read_all(self, request: Request) -> Response:
        identity = self.backend.identity(request)
        read_json(request, schemas.Empty())

        def mark_all_read() -> Response:
            with self.backend.pool.connection() as conn:
                storage.mark_all_read(conn, identity.login)
            return Response(status=204)

        return self.backend.responses.run(request, identity.login, "read_all", None, {}, mark_all_read)

    @http("GET", "/api/v1/preferences")
    def get_preferences(self, request: Request) -> Response:
        identity = self.backend.identity(request)
        with self.backend.pool.connection() as conn:
            prefs = storage.preferences(conn, [identity.login])[identity.login]
        return json_response(preferences_view(prefs))

    @http("PUT", "/api/v1/preferences")
    def put_preferences(self, request: Request) -> Response:
        identity = self.backend.identity(request)
        if not request.content_length and "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
            raise HttpProblem(400, 'send the preferences to change, e.g. {"language": "en"}')
        body = read_json(request, schemas.PreferencesIn())

        def save() -> Response:
            with self.backend.pool.connection() as conn:
                prefs = storage.save_preferences(conn, identity.login, body.get("language"), body.get("email"))
            return json_response(preferences_view(prefs))

        return self.backend.responses.run(request, identity.login, "put_preferences", None, body, save)
