"""HTTP plumbing every service uses: problem+json errors (RFC 9457), JSON bodies with
limits, bearer identity, and Nameko's HTTP entrypoint mapping exception types to status
codes in one table. No client input may produce a 500 or a traceback."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from typing import Any

import structlog
from eventlet import wsgi as eventlet_wsgi
from marshmallow import Schema, ValidationError
from nameko import config
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp, parse_address
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from shared.auth import Unauthenticated

log = structlog.stdlib.get_logger("guichet.http")

MAX_BODY_BYTES = 256 * 1024
PROBLEM = "application/problem+json"

TITLES = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 409: "Conflict", 412: "Precondition Failed",
    413: "Content Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content",
    500: "Internal Server Error", 503: "Service Unavailable",
}


class HttpProblem(Exception):
    """Answer with this status and detail."""

    def __init__(self, status: int, detail: str, errors: Mapping[str, list[str]] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = dict(headers or {})


def problem(status: int, detail: str, errors: Mapping[str, Any] | None = None,
            headers: Mapping[str, str] | None = None) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM, headers=headers)


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
        status=status, mimetype="application/json", headers=headers,
    )


def readiness(pool: Any, amqp_uri: str) -> dict[str, str]:
    """What ``/readyz`` checks in every service: PostgreSQL answers through the service's
    pool, and RabbitMQ accepts a connection; ``"ok"`` or why not, per check."""
    import kombu

    checks = {}
    try:
        with pool.connection(timeout=2) as conn:
            conn.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        with kombu.Connection(amqp_uri, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1)
        checks["broker"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["broker"] = f"unreachable: {type(exc).__name__}"
    return checks


def readiness_response(checks: Mapping[str, str]) -> Response:
    """200 when every check is ``"ok"``, else 503, with the checks."""
    ok = all(v == "ok" for v in checks.values())
    return json_response({"status": "ok" if ok else "unavailable", "checks": dict(checks)}, 200 if ok else 503)


def read_json(request: Request, schema: Schema | None = None) -> dict[str, Any]:
    """The request's JSON object, validated by ``schema``; 413, 415, 400 or 422 otherwise."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise HttpProblem(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    raw = request.stream.read(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise HttpProblem(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    if raw.strip() and request.mimetype != "application/json":
        raise HttpProblem(415, "send the body as application/json")
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (UnicodeDecodeError, ValueError) as exc:
        raise HttpProblem(400, f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise HttpProblem(400, "the body is nested too deeply") from None
    if not isinstance(data, dict):
        raise HttpProblem(400, "the body must be a JSON object")
    if bad := _unstorable_text(data):
        raise HttpProblem(422, "some fields are invalid", errors={bad: [UNSTORABLE]})
    if schema is None:
        return data
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise HttpProblem(422, "some fields are invalid", errors=_messages(exc.messages)) from None


UNSTORABLE = "text may not contain NUL characters or unpaired surrogates"


def _unstorable_text(value: Any, path: str = "") -> str | None:
    """The path of the first string PostgreSQL could not store (NUL, lone surrogates)."""
    if isinstance(value, str):
        if "\x00" in value or not _encodable(value):
            return path or "_body"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _unstorable_text(key, path) or _unstorable_text(item, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            if found := _unstorable_text(item, f"{path}.{index}" if path else str(index)):
                return found
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def load_query(schema: Schema, values: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return schema.load(values)
    except ValidationError as exc:
        raise HttpProblem(422, "some query parameters are invalid", errors=_messages(exc.messages)) from None


def _messages(messages: Any) -> dict[str, list[str]]:
    """marshmallow's nested messages, flattened to ``{"field.sub": [...]}``."""
    flat: dict[str, list[str]] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            flat.setdefault(prefix or "_body", []).extend(value)
        else:
            flat.setdefault(prefix or "_body", []).append(str(value))

    walk("", messages if isinstance(messages, dict) else {"_body": messages})
    return flat


class ProblemWsgiApp(WsgiApp):
    """Unknown paths and wrong methods answer problem+json too."""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            # eventlet decodes chunked bodies but does not say so; without this flag
            # werkzeug would hand the application an empty body.
            environ["wsgi.input_terminated"] = True
        request = Request(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
            if bad := _unstorable_text(values):
                response = problem(400, f"the path is not acceptable: {UNSTORABLE}")
            elif bad := _unstorable_text({k: v for k, v in request.args.lists()}):
                response = problem(422, "some query parameters are invalid", {bad.split(".")[0]: [UNSTORABLE]})
            else:
                request.path_values = values
                response = provider.handle_request(request)
        except HTTPException as exc:
            response = problem(exc.code or 500, exc.description or "", headers=_allow(exc))
        return response(environ, start_response)


def _allow(exc: HTTPException) -> dict[str, str]:
    valid = getattr(exc, "valid_methods", None)
    return {"Allow": ", ".join(valid)} if valid else {}


# Bearer tokens may be long (up to MAX_TOKEN_BYTES): let header lines up to 16 KiB reach
# the application, which answers 401 for an oversized token instead of eventlet's bare 400.
eventlet_wsgi.MAX_HEADER_LINE = 16 * 1024

# Each service has its own port (ARCHITECTURE.md), so several can share a process.
DEFAULT_PORTS = {"tickets": 8000, "routing": 8001, "notifier": 8002, "attachments": 8003, "escalation": 8004,
                 "reporting": 8006}


def http_address(service: str, env: Mapping[str, str] | None = None) -> str:
    """``<SERVICE>_HTTP_ADDRESS``, else all interfaces on the service's port."""
    env = os.environ if env is None else env
    return env.get(f"{service.upper()}_HTTP_ADDRESS", f"0.0.0.0:{DEFAULT_PORTS.get(service, 8000)}")


class ProblemWebServer(WebServer):
    @property
    def bind_addr(self) -> Any:
        addresses = config.get("HTTP_ADDRESSES") or {}
        service = self.container.service_name
        return parse_address(addresses.get(service) or http_address(service))

    def get_wsgi_app(self) -> WsgiApp:
        return ProblemWsgiApp(self)

    def process_request(self, sock: Any, address: Any) -> None:
        # The WSGI server writes headers and body in separate sends; with Nagle on, the
        # body of a larger answer waits for the client's delayed ACK (40 ms here).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().process_request(sock, address)


class ApiHandler(HttpRequestHandler):
    """Nameko's HTTP entrypoint, answering errors as problem+json.

    ``errors`` maps exception types (checked in order) to a status code; anything not
    in it is a bug: logged with its traceback, answered 500 without one.
    """

    server = ProblemWebServer()
    errors: tuple[tuple[type[BaseException], int], ...] = ()

    def __init__(self, method: str, url: str, **kwargs: Any) -> None:
        kwargs.setdefault("expected_exceptions", (HttpProblem, Unauthenticated) + tuple(e for e, _ in self.errors))
        super().__init__(method, url, **kwargs)

    def check_signature(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # The URL rule fixes the arguments, so Nameko's per-request inspect.getcallargs
        # (a few percent of the CPU of a request) checks nothing a test has not.
        return None

    def response_from_exception(self, exc: BaseException) -> Response:
        if isinstance(exc, HttpProblem):
            return problem(exc.status, exc.detail, exc.errors, exc.headers)
        if isinstance(exc, Unauthenticated):
            return problem(401, str(exc), headers={"WWW-Authenticate": 'Bearer realm="guichet"'})
        for exc_type, status in self.errors:
            if isinstance(exc, exc_type):
                field = getattr(exc, "field", None)
                errors = {field: [getattr(exc, "reason", str(exc))]} if field else None
                return problem(status, str(exc), errors)
        if isinstance(exc, HTTPException):
            return problem(exc.code or 400, exc.description or "")
        log.error("unexpected error", exc_info=exc)
        return problem(500, "an unexpected error occurred; it has been logged")


class ServiceProbes:
    """``/healthz``, ``/readyz`` and ``/api/v1/openapi.json``, the same in every service's
    HTTP class: it sets ``openapi_document`` (``staticmethod`` of its document function),
    and its ``backend`` answers ``ready()``."""

    backend: Any
    openapi_document: Any

    @ApiHandler.decorator("GET", "/healthz")
    def healthz(self, request: Request) -> Response:
        return json_response({"status": "ok"})

    @ApiHandler.decorator("GET", "/readyz")
    def readyz(self, request: Request) -> Response:
        return readiness_response(self.backend.ready())

    @ApiHandler.decorator("GET", "/api/v1/openapi.json")
    def openapi(self, request: Request) -> Response:
        return json_response(self.openapi_document())
