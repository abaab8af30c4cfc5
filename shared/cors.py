"""CORS for ENT frontends served from other origins (``API.md``, Identity).

Browsers on the origins listed in ``CORS_ALLOWED_ORIGINS`` (exact ``scheme://host[:port]``,
comma-separated; no wildcard) may call every ``/api/v1`` path: their preflight is
answered with the methods and headers the API uses, and ``ETag`` and ``Location`` are
exposed. Other origins get no CORS header at all (their preflight is a 403 problem), so
the browser keeps them out. Tokens travel in ``Authorization``, never in cookies: no
credentials mode.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

ALLOWED_METHODS = ("GET", "POST", "PUT", "DELETE")
ALLOWED_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key", "If-Match")
EXPOSED_HEADERS = ("ETag", "Location", "Retry-After")
MAX_AGE_SECONDS = 600
PATH_PREFIX = "/api/v1"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Cors:
    """A WSGI middleware answering preflights and adding CORS headers for listed origins."""

    def __init__(self, app: WsgiApp, origins: Iterable[str]) -> None:
        self.app = app
        self.origins = {origin.rstrip("/") for origin in origins}
        self._allowed_headers = {h.lower() for h in ALLOWED_HEADERS}

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        origin = environ.get("HTTP_ORIGIN")
        if not origin or not environ.get("PATH_INFO", "").startswith(PATH_PREFIX):
            return self.app(environ, start_response)
        allowed = origin in self.origins
        if environ.get("REQUEST_METHOD") == "OPTIONS" and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ:
            return self._preflight(environ, start_response, origin if allowed else None)
        if not allowed:
            return self.app(environ, _with_headers(start_response, [("Vary", "Origin")]))
        return self.app(environ, _with_headers(start_response, [
            ("Access-Control-Allow-Origin", origin),
            ("Access-Control-Expose-Headers", ", ".join(EXPOSED_HEADERS)),
            ("Vary", "Origin"),
        ]))

    def _preflight(self, environ: dict[str, Any], start_response: Callable[..., Any],
                   origin: str | None) -> Iterable[bytes]:
        method = environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD", "")
        requested = {h.strip().lower() for h in environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "").split(",")
                     if h.strip()}
        if origin is None:
            return _refuse(start_response, "this origin is not allowed to call Guichet from a browser")
        if method not in ALLOWED_METHODS or not requested <= self._allowed_headers:
            return _refuse(start_response, f"only {', '.join(ALLOWED_METHODS)} with the headers"
                                           f" {', '.join(ALLOWED_HEADERS)} are allowed")
        start_response("204 No Content", [
            ("Access-Control-Allow-Origin", origin),
            ("Access-Control-Allow-Methods", ", ".join(ALLOWED_METHODS)),
            ("Access-Control-Allow-Headers", ", ".join(ALLOWED_HEADERS)),
            ("Access-Control-Max-Age", str(MAX_AGE_SECONDS)),
            ("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
            ("Content-Length", "0"),
        ])
        return [b""]


def _with_headers(start_response: Callable[..., Any], extra: list[tuple[str, str]]) -> Callable[..., Any]:
    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        present = {name.lower() for name, _ in headers}
        return start_response(status, headers + [(n, v) for n, v in extra if n.lower() not in present], exc_info)
    return start


def _refuse(start_response: Callable[..., Any], detail: str) -> Iterable[bytes]:
    body = json.dumps({"type": "about:blank", "title": "Forbidden", "status": 403, "detail": detail}).encode()
    start_response("403 Forbidden", [("Content-Type", "application/problem+json"), ("Content-Length", str(len(body))),
                                     ("Vary", "Origin")])
    return [body]


def with_cors(app: WsgiApp, origins: Iterable[str]) -> WsgiApp:
    """``app`` answering CORS for ``origins``; ``app`` itself when none is listed."""
    origins = tuple(origins)
    return Cors(app, origins) if origins else app
