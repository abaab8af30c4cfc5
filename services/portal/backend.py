"""The portal's calls to the other services' HTTP APIs (``API.md``), made server-side on
behalf of the signed-in person with a short-lived token (``shared.auth.token_for``).

The portal decides no access itself: a 404 from a service is a page the person may not
see, ``allowed_actions`` says which buttons show. A service that does not answer (or
answers 5xx) raises ``BackendUnavailable``: the portal shows its friendly 503 page.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import quote

import eventlet
import requests
import structlog
from requests.adapters import HTTPAdapter

from shared.auth import Identity, token_for
from shared.config import Settings

log = structlog.stdlib.get_logger("guichet.portal.backend")

TOKEN_SECONDS = 300  # the services' tokens for a person live five minutes...
TOKEN_MARGIN = 240  # ...and the portal uses each for one minute at most


class BackendUnavailable(Exception):
    """A service did not answer in time, or answered 5xx."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service


class NotFound(Exception):
    """The service answered 404: unknown, or not visible to this person."""


@dataclass
class Answer:
    """A service's answer: its status, its JSON body (or ``None``) and headers."""

    status: int
    body: Any
    headers: Mapping[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def errors(self) -> dict[str, list[str]]:
        """The problem's ``errors`` per field (``API.md``, Errors), else ``{}``."""
        if isinstance(self.body, dict) and isinstance(self.body.get("errors"), dict):
            return self.body["errors"]
        return {}

    @property
    def detail(self) -> str:
        return str(self.body.get("detail", "")) if isinstance(self.body, dict) else ""


def _path(value: str) -> str:
    return quote(str(value), safe="")


class Backend:
    """One ``requests`` session per service (eventlet makes its sockets cooperative)."""

    def __init__(self, urls: Mapping[str, str], settings: Settings, timeout: float = 10.0) -> None:
        self.urls = dict(urls)
        self.settings = settings
        self.timeout = timeout
        self.sessions: dict[str, requests.Session] = {}
        self._tokens: dict[Identity, tuple[str, float]] = {}
        self._manages: dict[str, tuple[bool, float]] = {}
        self._lock = threading.Lock()
        for name in self.urls:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            self.sessions[name] = session

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()

    def token(self, identity: Identity) -> str:
        """A short-lived token for ``identity``, reused for a minute: the services
        remember a token they verified, so the same one costs them no signature check."""
        now = time.time()
        cached = self._tokens.get(identity)
        if cached is not None and cached[1] > now:
            return cached[0]
        token = token_for(self.settings, identity, ttl_seconds=TOKEN_SECONDS)
        with self._lock:
            if len(self._tokens) > 10_000:
                self._tokens.clear()
            self._tokens[identity] = (token, now + TOKEN_SECONDS - TOKEN_MARGIN)
        return token

    @staticmethod
    def together(*calls: Callable[[], Any]) -> list[Any]:
        """The calls' results, made at the same time (one green thread each); the first
        exception, if any, raised once they have all finished."""
        pool = eventlet.GreenPool(len(calls))
        threads = [pool.spawn(call) for call in calls]
        results, error = [], None
        for thread in threads:
            try:
                results.append(thread.wait())
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the others
                results.append(None)
                error = error or exc
        if error is not None:
            raise error
        return results

    # -- plumbing

    def call(self, service: str, method: str, path: str, identity: Identity | None, *,
             json: Any = None, params: Any = None, files: Any = None, headers: Mapping[str, str] | None = None,
             language: str | None = None, idempotency_key: str | None = None, stream: bool = False) -> Any:
        """One request; an ``Answer`` (or the raw response when ``stream``)."""
        sent = dict(headers or {})
        if identity is not None:
            sent["Authorization"] = f"Bearer {self.token(identity)}"
        if language:
            sent["Accept-Language"] = language
        if method in ("POST", "PUT"):
            # A double submit (or a retry) files nothing twice (API.md, Errors).
            sent["Idempotency-Key"] = idempotency_key or str(uuid.uuid4())
        url = self.urls[service] + path
        try:
            response = self.sessions[service].request(
                method, url, json=json, params=params, files=files, headers=sent, timeout=self.timeout, stream=stream,
            )
        except requests.RequestException as exc:
            log.warning("backend unreachable", service=service, path=path, error=type(exc).__name__)
            raise BackendUnavailable(service, type(exc).__name__) from None
        if response.status_code >= 500:
            log.warning("backend error", service=service, path=path, status=response.status_code)
            response.close()
            raise BackendUnavailable(service, f"HTTP {response.status_code}")
        if stream:
            return response
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        return Answer(response.status_code, body, response.headers)

    def found(self, answer: Answer) -> Any:
        """The body of a 2xx answer; ``NotFound`` for a 404 (and any other refusal of a read)."""
        if answer.ok:
            return answer.body
        raise NotFound()

    # -- tickets

    def tickets(self, identity: Identity, params: Iterable[tuple[str, str]]) -> dict[str, Any]:
        answer = self.call("tickets", "GET", "/api/v1/tickets", identity, params=list(params))
        if answer.status == 422:
            return {"items": [], "next_cursor": None, "invalid": answer.errors}
        return self.found(answer)

    def ticket(self, identity: Identity, ticket: str) -> dict[str, Any]:
        return self.found(self.call("tickets", "GET", f"/api/v1/tickets/{_path(ticket)}", identity))

    def history(self, identity: Identity, ticket: str) -> list[dict[str, Any]]:
        return self.found(self.call("tickets", "GET", f"/api/v1/tickets/{_path(ticket)}/history", identity))["items"]

    def submit(self, identity: Identity, body: dict[str, Any], key: str | None) -> Answer:
        return self.call("tickets", "POST", "/api/v1/tickets", identity, json=body, idempotency_key=key)

    def comment(self, identity: Identity, ticket: str, body: dict[str, Any], key: str | None) -> Answer:
        return self.call("tickets", "POST", f"/api/v1/tickets/{_path(ticket)}/comments", identity, json=body,
                         idempotency_key=key)

    def act(self, identity: Identity, ticket: str, action: str, body: dict[str, Any], key: str | None) -> Answer:
        return self.call("tickets", "POST", f"/api/v1/tickets/{_path(ticket)}/actions/{_path(action)}", identity,
                         json=body, idempotency_key=key)

    def invite(self, identity: Identity, ticket: str, user: str, key: str | None) -> Answer:
        return self.call("tickets", "POST", f"/api/v1/tickets/{_path(ticket)}/invitations", identity,
                         json={"user": user}, idempotency_key=key)

    def uninvite(self, identity: Identity, ticket: str, user: str) -> Answer:
        return self.call("tickets", "DELETE", f"/api/v1/tickets/{_path(ticket)}/invitations/{_path(user)}", identity)

    def watch(self, identity: Identity, ticket: str, on: bool, key: str | None) -> Answer:
        return self.call("tickets", "PUT" if on else "DELETE", f"/api/v1/tickets/{_path(ticket)}/watchers/me",
                         identity, idempotency_key=key)

    # -- routing

    def categories(self, identity: Identity, language: str) -> list[dict[str, Any]]:
        return self.found(self.call("routing", "GET", "/api/v1/categories", identity, language=language))

    def category(self, identity: Identity, category: str, language: str) -> dict[str, Any]:
        return self.found(self.call("routing", "GET", f"/api/v1/categories/{_path(category)}", identity,
                                    language=language))

    def save_category(self, identity: Identity, category: str | None, body: dict[str, Any], key: str | None) -> Answer:
        """A new category (``category`` None) or the whole of an existing one (admins)."""
        if category is None:
            return self.call("routing", "POST", "/api/v1/categories", identity, json=body, idempotency_key=key)
        return self.call("routing", "PUT", f"/api/v1/categories/{_path(category)}", identity, json=body,
                         idempotency_key=key)

    def delete_category(self, identity: Identity, category: str) -> Answer:
        return self.call("routing", "DELETE", f"/api/v1/categories/{_path(category)}", identity)

    def departments(self, identity: Identity) -> list[dict[str, Any]]:
        """The departments the person manages (all of them for an admin); ``[]`` for
        anybody else (routing answers 403)."""
        answer = self.call("routing", "GET", "/api/v1/departments", identity)
        if answer.status == 403:
            return []
        return self.found(answer)

    def manages(self, identity: Identity) -> bool:
        """Whether the header shows the console's link: an admin, or a manager of a
        department. Remembered a minute per person: every page's header asks."""
        now = time.time()
        cached = self._manages.get(identity.login)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            value = identity.is_admin or bool(self.departments(identity))
        except (BackendUnavailable, NotFound):
            return False
        with self._lock:
            if len(self._manages) > 10_000:
                self._manages.clear()
            self._manages[identity.login] = (value, now + 60)
        return value

    def department(self, identity: Identity, department: str) -> dict[str, Any]:
        return self.found(self.call("routing", "GET", f"/api/v1/departments/{_path(department)}", identity))

    def set_availability(self, identity: Identity, department: str, available: bool, key: str | None) -> Answer:
        return self.call("routing", "PUT", f"/api/v1/departments/{_path(department)}/managers/me/availability",
                         identity, json={"available": available}, idempotency_key=key)

    def save_department(self, identity: Identity, department: str, body: dict[str, Any], key: str | None) -> Answer:
        return self.call("routing", "PUT", f"/api/v1/departments/{_path(department)}", identity, json=body,
                         idempotency_key=key)

    # -- escalation

    def establishment(self, identity: Identity, uai: str) -> Answer:
        return self.call("escalation", "GET", f"/api/v1/establishments/{_path(uai)}/escalation", identity)

    def save_establishment(self, identity: Identity, uai: str, body: dict[str, Any], key: str | None) -> Answer:
        return self.call("escalation", "PUT", f"/api/v1/establishments/{_path(uai)}/escalation", identity,
                         json=body, idempotency_key=key)

    def escalations(self, identity: Identity, params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
        """The escalations the person handles; ``[]`` when the service refuses (not a
        referent nor the central support)."""
        answer = self.call("escalation", "GET", "/api/v1/escalations", identity, params=dict(params or {}))
        if answer.status in (403, 422):
            return []
        body = self.found(answer)
        return body.get("items", []) if isinstance(body, dict) else body

    # -- notifier

    def feed(self, identity: Identity, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        answer = self.call("notifier", "GET", "/api/v1/feed", identity, params=dict(params or {}))
        if answer.status == 422:
            return {"items": [], "unread": 0, "next_cursor": None}
        return self.found(answer)

    def unread(self, identity: Identity) -> int:
        """The news feed's unread count (0 when the notifier is away: a header is no reason for a 503)."""
        try:
            return int(self.feed(identity, {"limit": "1"}).get("unread", 0))
        except (BackendUnavailable, NotFound):
            return 0

    def read(self, identity: Identity, entry: str | None) -> Answer:
        path = "/api/v1/feed/read-all" if entry is None else f"/api/v1/feed/{_path(entry)}/read"
        return self.call("notifier", "POST", path, identity)

    def preferences(self, identity: Identity) -> dict[str, Any]:
        return self.found(self.call("notifier", "GET", "/api/v1/preferences", identity))

    def save_preferences(self, identity: Identity, body: dict[str, Any], key: str | None) -> Answer:
        return self.call("notifier", "PUT", "/api/v1/preferences", identity, json=body, idempotency_key=key)

    # -- attachments

    def upload(self, identity: Identity, filename: str, stream: IO[bytes], content_type: str | None) -> Answer:
        return self.call("attachments", "POST", "/api/v1/attachments", identity,
                         files={"file": (filename, stream, content_type or "application/octet-stream")})

    def download(self, identity: Identity, attachment: str) -> requests.Response:
        response = self.call("attachments", "GET", f"/api/v1/attachments/{_path(attachment)}", identity, stream=True)
        if response.status_code != 200:
            response.close()
            raise NotFound()
        return response

    def ready(self) -> dict[str, str]:
        """Whether each service answers its ``/healthz``."""
        checks = {}
        for name, url in self.urls.items():
            try:
                ok = self.sessions[name].get(url + "/healthz", timeout=2).status_code == 200
                checks[name] = "ok" if ok else "unhealthy"
            except requests.RequestException as exc:
                checks[name] = f"unreachable: {type(exc).__name__}"
        return checks
