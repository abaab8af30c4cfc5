"""HTTP plumbing every service uses: problem+json errors (RFC 9457), JSON bodies with
limits, bearer identity, and Nameko's HTTP entrypoint mapping exception types to status
codes in one table. No client input may produce a 500 or a traceback."""

from __future__ import annotations

import io
import json
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import eventlet
import structlog
from eventlet import wsgi as eventlet_wsgi
from marshmallow import Schema, ValidationError
from nameko import config
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp, parse_address
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from shared import tracing
from shared.auth import Unauthenticated
from shared.failures import TRANSIENT_TYPES, DependencyUnavailable, is_transient, retry_after

log = structlog.stdlib.get_logger("guichet.http")

MAX_BODY_BYTES = 256 * 1024
PROBLEM = "application/problem+json"

TITLES = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 408: "Request Timeout", 409: "Conflict", 412: "Precondition Failed",
    413: "Content Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content", 429: "Too Many Requests",
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


def unavailable(exc: BaseException) -> Response:
    """503 with ``Retry-After`` for a transient failure (``shared.failures``): the database,
    the broker or another service is away; the client may send the same request again."""
    wait = retry_after(exc)
    log.warning("dependency unavailable", error=f"{type(exc).__name__}: {exc}"[:300], retry_after=wait)
    # A dependency's name is fine to tell; a database error's text is not.
    detail = str(exc) if isinstance(exc, DependencyUnavailable) else "a service this one needs is unavailable, try again shortly"
    return problem(503, detail, headers={"Retry-After": str(wait)})


def json_response(payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
        status=status, mimetype="application/json", headers=headers,
    )


def readiness(pool: Any, amqp_uri: str) -> dict[str, str]:
    """What ``/readyz`` checks in every service, cheaply: PostgreSQL answers on one of the
    pool's existing connections, and the broker connection kept for these checks is
    alive (one heartbeat frame; opened again only when it died); ``"ok"`` or why not."""
    checks = {}
    try:
        with pool.connection(timeout=2) as conn:
            conn.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"unreachable: {type(exc).__name__}"
    checks["broker"] = _broker_probe(amqp_uri).check()
    return checks


class BrokerProbe:
    """One AMQP connection per broker URI, kept open for readiness checks: a check is a
    heartbeat frame written on it, not a new TCP and AMQP handshake per probe."""

    def __init__(self, amqp_uri: str) -> None:
        import kombu

        self.connection = kombu.Connection(amqp_uri, connect_timeout=2, heartbeat=0)
        self._lock = threading.Lock()

    def check(self) -> str:
        with self._lock:
            try:
                if self.connection.connected:
                    self.connection.connection.send_heartbeat()
                    self.connection.connection.drain_events(timeout=0)  # reads a close the broker sent
                else:
                    self.connection.ensure_connection(max_retries=1, timeout=2)
                return "ok"
            except TimeoutError:  # nothing to read: alive
                return "ok"
            except Exception as exc:  # noqa: BLE001 - any failure means not ready
                self.connection.collect()  # forget the dead socket; the next check reconnects
                return f"unreachable: {type(exc).__name__}"


_probes: dict[str, BrokerProbe] = {}


def _broker_probe(amqp_uri: str) -> BrokerProbe:
    probe = _probes.get(amqp_uri)
    if probe is None:
        probe = _probes.setdefault(amqp_uri, BrokerProbe(amqp_uri))
    return probe


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
    """Unknown paths and wrong methods answer problem+json too; ``/healthz`` is answered
    here, and request bodies are received here (``BodyGuard``), before any worker."""

    def __init__(self, server: Any, guard: BodyGuard | None = None) -> None:
        super().__init__(server)
        self.guard = guard or BodyGuard()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == "/healthz" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            # Liveness: the process serves HTTP. Answered without a worker and without
            # touching a dependency, so busy workers or a database away never make
            # Kubernetes restart a healthy pod.
            return json_response({"status": "ok"})(environ, start_response)
        if environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked":
            # eventlet decodes chunked bodies but does not say so; without this flag
            # werkzeug would hand the application an empty body.
            environ["wsgi.input_terminated"] = True
        try:
            with self.guard.receive(environ):
                return self.dispatch(environ, start_response)
        except HttpProblem as exc:
            _give_up_body(environ)
            return problem(exc.status, exc.detail, headers={**exc.headers, "Connection": "close"})(
                environ, start_response)

    def dispatch(self, environ: dict[str, Any], start_response: Any) -> Any:
        """Route the request to its entrypoint (a Nameko worker)."""
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


class Observed:
    """Around every service's WSGI application (the portal's too): ``/metrics``
    answered here, without a worker (``shared.metrics``); every other request
    answered within its span and its correlation id (the caller's
    ``X-Correlation-Id`` or a new one, echoed in the response), then logged as one
    structured line (method, path, route, status, duration, correlation id) in
    place of the WSGI server's Apache-style line, and counted by route and status."""

    QUIET = frozenset({"/healthz"})  # the kubelet's every few seconds: not worth a line each

    def __init__(self, app: Any, server: Any, url_map: Any) -> None:
        self.app = app
        self.server = server
        self.url_map = url_map

    def route(self, environ: dict[str, Any]) -> str:
        """The URL rule the request matches (bounded label values), or ``unmatched``."""
        try:
            provider, _ = self.url_map.bind_to_environ(environ).match()
            return str(provider.url)
        except HTTPException:
            return "unmatched"

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "?")
        if path == "/metrics" and method in ("GET", "HEAD"):
            from shared.metrics import metrics_response

            return metrics_response(self.server.container)(environ, start_response)
        if path in self.QUIET:
            return self.app(environ, start_response)
        correlation_id = tracing.sane_correlation_id(environ.get("HTTP_X_CORRELATION_ID")) or tracing.new_correlation_id()
        environ["HTTP_X_CORRELATION_ID"] = correlation_id  # the handlers read the header
        started = time.perf_counter()
        answer = {"status": 0}

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer["status"] = int(status.split(" ", 1)[0])
            headers = [h for h in headers if h[0].lower() != "x-correlation-id"]
            headers.append(("X-Correlation-Id", correlation_id))
            return start_response(status, headers, exc_info) if exc_info is not None else start_response(status, headers)

        parent = tracing.propagate.extract({k[5:].lower().replace("_", "-"): v for k, v in environ.items()
                                            if k in ("HTTP_TRACEPARENT", "HTTP_TRACESTATE")})
        route = self.route(environ)
        with tracing.tracer.start_as_current_span(
            f"{method} {route}", context=parent, kind=tracing.SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path, "http.route": route},
        ) as span, tracing.correlation(correlation_id):
            environ["guichet.traceparent"] = tracing.current_traceparent()  # to the worker (context data)
            try:
                return self.app(environ, start)
            finally:
                span.set_attribute("http.response.status_code", answer["status"])
                if answer["status"] >= 500:
                    span.set_status(tracing.Status(tracing.StatusCode.ERROR))
                duration = time.perf_counter() - started
                from shared.metrics import observe_request

                observe_request(self.server.container.service_name, method, route, answer["status"], duration)
                log.info("request", method=method, path=path, route=route, status=answer["status"],
                         duration_ms=round(duration * 1000, 1), client=environ.get("REMOTE_ADDR"))


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


class BodyGuard:
    """Receives request bodies before a worker is spent on them, within bounds.

    A client that announces a body and sends it slowly (or never) must not hold a
    worker: a body up to ``buffer_limit`` bytes (every JSON body) is read here, in the
    connection's green thread, within ``timeout`` seconds in all (408 after that), then
    handed to the application from memory. Larger bodies (uploads, streamed to disk by
    the attachments service) go on to the worker as a stream, each read bounded by the
    server's socket timeout. Either way, at most ``per_client`` bodies are received at
    once per client address (429) and ``total`` in all (503), so slow clients cannot
    take every connection either. Settings: ``HTTP_BODY_TIMEOUT``,
    ``HTTP_BODIES_PER_CLIENT``, ``HTTP_BODIES_TOTAL``.
    """

    def __init__(self, *, timeout: float | None = None, per_client: int | None = None, total: int | None = None,
                 buffer_limit: int = MAX_BODY_BYTES) -> None:
        self.timeout = timeout if timeout is not None else _env_number("HTTP_BODY_TIMEOUT", 10.0)
        self.per_client = int(per_client if per_client is not None else _env_number("HTTP_BODIES_PER_CLIENT", 4))
        self.total = int(total if total is not None else _env_number("HTTP_BODIES_TOTAL", 64))
        self.buffer_limit = buffer_limit
        self.receiving: Counter[str] = Counter()

    def receive(self, environ: dict[str, Any]) -> Any:
        """A context in which the request's body, if any, has been received (or is being
        streamed within the bounds); raises ``HttpProblem`` when a bound is hit."""
        return _Receiving(self, environ)

    def _admit(self, client: str) -> None:
        if self.receiving[client] >= self.per_client:
            raise HttpProblem(429, "too many requests from this client are sending a body at once",
                              headers={"Retry-After": "1"})
        if sum(self.receiving.values()) >= self.total:
            raise HttpProblem(503, "too many request bodies are being received, try again shortly",
                              headers={"Retry-After": "1"})
        self.receiving[client] += 1

    def _release(self, client: str) -> None:
        self.receiving[client] -= 1
        if self.receiving[client] <= 0:
            del self.receiving[client]

    def _read_all(self, environ: dict[str, Any], length: int | None) -> bytes:
        stream = environ["wsgi.input"]
        limit = self.buffer_limit + 1 if length is None else length
        parts: list[bytes] = []
        received = 0
        try:
            with eventlet.Timeout(self.timeout):
                while received < limit:
                    chunk = stream.read(min(64 * 1024, limit - received))
                    if not chunk:
                        break
                    parts.append(chunk)
                    received += len(chunk)
        except eventlet.Timeout:
            raise HttpProblem(408, f"the request body did not arrive within {self.timeout:g} s") from None
        except (OSError, ValueError):  # the client went away, or sent a broken chunk
            raise HttpProblem(400, "the request body could not be read") from None
        return b"".join(parts)


class _Joined(io.RawIOBase):
    """The bytes already read, then the rest of the stream."""

    def __init__(self, head: bytes, rest: Any) -> None:
        self.head = io.BytesIO(head)
        self.rest = rest

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.head.read(size)
        if size is None or size < 0:
            return data + self.rest.read()
        if len(data) < size:
            data += self.rest.read(size - len(data))
        return data

    def readline(self, size: int = -1) -> bytes:
        line = self.head.readline(size)
        if line.endswith(b"\n") or (size is not None and 0 <= size <= len(line)):
            return line
        return line + self.rest.readline(-1 if size is None or size < 0 else size - len(line))


def _give_up_body(environ: dict[str, Any]) -> None:
    """Do not let eventlet read the rest of a refused body to keep the connection: that
    would wait on the slow client again. Told ``Connection: close``, the client closes; a
    client that sends more anyway gets its connection closed as unreadable."""
    original = environ.get("eventlet.input") or environ.get("wsgi.input")
    if getattr(original, "content_length", None) is not None and hasattr(original, "position"):
        original.position = original.content_length
    if hasattr(original, "chunked_input"):
        original.chunked_input = False


class _Receiving:
    def __init__(self, guard: BodyGuard, environ: dict[str, Any]) -> None:
        self.guard = guard
        self.environ = environ
        self.client: str | None = None

    def __enter__(self) -> None:
        environ, guard = self.environ, self.guard
        chunked = environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise HttpProblem(400, "Content-Length is not a number") from None
        if length <= 0 and not chunked:
            return
        self.client = environ.get("REMOTE_ADDR") or "?"
        guard._admit(self.client)
        try:
            self._receive(chunked, length)
        except BaseException:
            self.__exit__()
            raise

    def _receive(self, chunked: bool, length: int) -> None:
        environ, guard = self.environ, self.guard
        if not chunked and length > guard.buffer_limit:
            return  # a large body: streamed to the worker, the slot held until answered
        body = guard._read_all(environ, None if chunked else length)
        if chunked and len(body) > guard.buffer_limit:
            # A large chunked body (no length said): what was read goes first, the rest
            # streams on; the slot stays held until the request is answered.
            environ["wsgi.input"] = _Joined(body, environ["wsgi.input"])
            return
        # Received whole: the slot is free again; the application reads from memory.
        self.__exit__()
        environ["wsgi.input"] = io.BytesIO(body)
        if chunked:
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            environ.pop("wsgi.input_terminated", None)

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.guard._release(self.client)
            self.client = None


def _allow(exc: HTTPException) -> dict[str, str]:
    valid = getattr(exc, "valid_methods", None)
    return {"Allow": ", ".join(valid)} if valid else {}


# Bearer tokens may be long (up to MAX_TOKEN_BYTES): let header lines as long as all the
# headers together may be (eventlet's 64 KiB) reach the application, which answers 401
# for an oversized token instead of eventlet's bare 400.
eventlet_wsgi.MAX_HEADER_LINE = eventlet_wsgi.MAX_TOTAL_HEADER_SIZE

# Each service has its own port (ARCHITECTURE.md), so several can share a process.
DEFAULT_PORTS = {
    "tickets": 8000, "routing": 8001, "notifier": 8002, "attachments": 8003,
    "escalation": 8004, "portal": 8005, "reporting": 8006,
}


def http_address(service: str, env: Mapping[str, str] | None = None) -> str:
    """``<SERVICE>_HTTP_ADDRESS``, else all interfaces on the service's port."""
    env = os.environ if env is None else env
    return env.get(f"{service.upper()}_HTTP_ADDRESS", f"0.0.0.0:{DEFAULT_PORTS.get(service, 8000)}")


class ProblemWebServer(WebServer):
    """Nameko's web server with timeouts, problem+json, liveness without a worker, and
    HTTP requests in a worker pool of their own (``shared.nameko_deps.WorkerPools``).

    ``HTTP_READ_TIMEOUT`` (default 15 s) bounds each read from a client once its request
    began; ``HTTP_IDLE_TIMEOUT`` (default 30 s) how long a kept-alive connection may wait
    for its next request. A connection past either is closed."""

    def setup(self) -> None:
        from shared.nameko_deps import install_worker_pools

        super().setup()
        install_worker_pools(self.container)

    def context_data_from_headers(self, request: Any) -> dict[str, Any]:
        """What the worker inherits from the request: its span and correlation id."""
        data = {}
        if traceparent := request.environ.get("guichet.traceparent"):
            data[tracing.TRACEPARENT_KEY] = traceparent
        if correlation_id := tracing.sane_correlation_id(request.environ.get("HTTP_X_CORRELATION_ID")):
            data[tracing.CORRELATION_KEY] = correlation_id
        return data

    @property
    def bind_addr(self) -> Any:
        addresses = config.get("HTTP_ADDRESSES") or {}
        service = self.container.service_name
        return parse_address(addresses.get(service) or http_address(service))

    def get_wsgi_app(self) -> Any:
        from shared.config import Settings  # CORS for ENT frontends on other origins (shared/cors.py)
        from shared.cors import with_cors

        return with_cors(ProblemWsgiApp(self), Settings.from_env().cors_allowed_origins)

    def get_wsgi_server(self, sock: Any, wsgi_app: Any, protocol: Any = None, debug: bool = False) -> Any:
        wsgi_app = Observed(wsgi_app, self, self.make_url_map())
        server = super().get_wsgi_server(sock, wsgi_app, **({"protocol": protocol} if protocol else {}), debug=debug)
        server.socket_timeout = _env_number("HTTP_READ_TIMEOUT", 15.0)
        server.keepalive = _env_number("HTTP_IDLE_TIMEOUT", 30.0)
        server.log_output = False  # ProblemWsgiApp logs each request as structured fields instead
        return server

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
        kwargs.setdefault("expected_exceptions",
                          (HttpProblem, Unauthenticated, *TRANSIENT_TYPES) + tuple(e for e, _ in self.errors))
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
        if is_transient(exc):
            return unavailable(exc)
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
        # Answered by ProblemWsgiApp before it reaches a worker; kept as a route so the
        # OpenAPI document and the URL map know it.
        return json_response({"status": "ok"})

    @ApiHandler.decorator("GET", "/readyz")
    def readyz(self, request: Request) -> Response:
        return readiness_response(self.backend.ready())

    @ApiHandler.decorator("GET", "/api/v1/openapi.json")
    def openapi(self, request: Request) -> Response:
        return json_response(self.openapi_document())
