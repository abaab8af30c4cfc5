"""Correlation ids and OpenTelemetry traces across every hop: HTTP request, Nameko
worker (RPC, event, timer), RPC call and reply, outbox publish, SMTP send.

``opentelemetry-instrumentation-nameko`` targets Nameko 2 (it patches entrypoints that
Nameko 3 renamed), so this is a thin instrumentation of our own, installed by
``instrument()`` (called when ``shared.nameko_deps`` is imported):

- every Nameko worker runs inside a span whose parent is the ``traceparent`` found in
  its context data (RPC headers ``nameko.traceparent``, set by the caller; the outbox
  relay sets the same header on each event it publishes; the HTTP server passes the
  request's span);
- every RPC call is a CLIENT span whose context travels in the call's headers;
- the worker's correlation id (``X-Correlation-Id``, or the event's, or the caller's)
  is kept in its context data too, so an RPC call made while handling an event carries
  the event's correlation id, and ``current_correlation_id()`` gives it to the code that
  writes new events.

Exporting is configured from the standard ``OTEL_*`` variables (``configure_tracing``):
with none of ``OTEL_EXPORTER_OTLP_ENDPOINT``/``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` set,
or ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``, nothing is exported and
spans cost next to nothing (the API's no-op tracer)."""

from __future__ import annotations

import contextvars
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

import structlog
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

log = structlog.stdlib.get_logger("guichet.tracing")

tracer = trace.get_tracer("guichet")

CORRELATION_KEY = "correlation_id"  # in Nameko's context data (header nameko.correlation_id)
TRACEPARENT_KEY = "traceparent"  # in Nameko's context data (header nameko.traceparent)
_correlation: contextvars.ContextVar[str | None] = contextvars.ContextVar("guichet_correlation_id", default=None)


def current_correlation_id() -> str | None:
    """The correlation id of the request or event being handled here, if any."""
    return _correlation.get()


def sane_correlation_id(value: Any) -> str | None:
    """``value`` if it can serve as a correlation id (printable, at most 100 chars)."""
    if isinstance(value, str) and value and len(value) <= 100 and value.isprintable():
        return value
    return None


def new_correlation_id() -> str:
    return str(uuid4())


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span (None when there is none)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def context_from(traceparent: str | None) -> otel_context.Context | None:
    """The OpenTelemetry context a ``traceparent`` continues (None for none)."""
    if not traceparent or not isinstance(traceparent, str):
        return None
    return propagate.extract({"traceparent": traceparent})


def configure_tracing(service_name: str, env: Mapping[str, str] | None = None) -> bool:
    """Install an SDK tracer provider exporting OTLP over HTTP when ``OTEL_*`` asks for
    it; returns whether it did. ``OTEL_SERVICE_NAME`` overrides ``service_name``."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() in ("none", ""):
        return False
    if not (env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # Resource.create reads OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME itself.
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or f"guichet-{service_name}"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # endpoint, headers... from OTEL_*
    trace.set_tracer_provider(provider)
    instrument_psycopg()
    log.info("tracing on", exporter="otlp/http")
    return True


def instrument_psycopg() -> None:
    """A span per SQL statement (``opentelemetry-instrumentation-psycopg``), if installed."""
    try:
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    except ImportError:  # pragma: no cover - the package is a dependency; be lenient anyway
        log.warning("opentelemetry-instrumentation-psycopg is not installed: no SQL spans")
        return
    instrumentor = PsycopgInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(enable_commenter=False)


@contextmanager
def correlation(correlation_id: str | None) -> Iterator[None]:
    """Run the block with ``correlation_id`` as the current one (and in every log line)."""
    token = _correlation.set(correlation_id)
    try:
        with structlog.contextvars.bound_contextvars(correlation_id=correlation_id):
            yield
    finally:
        _correlation.reset(token)


def _worker_kind(entrypoint: Any) -> tuple[SpanKind, str]:
    from nameko.rpc import Rpc
    from nameko.web.handlers import HttpRequestHandler

    if isinstance(entrypoint, Rpc):
        return SpanKind.SERVER, "rpc"
    if isinstance(entrypoint, HttpRequestHandler):
        return SpanKind.INTERNAL, "http"
    if hasattr(entrypoint, "queue") or type(entrypoint).__name__ in ("EventHandler", "Consumer"):
        return SpanKind.CONSUMER, "event"
    return SpanKind.INTERNAL, type(entrypoint).__name__.lower()


def _worker_correlation(worker_ctx: Any, what: str) -> str | None:
    found = sane_correlation_id(worker_ctx.data.get(CORRELATION_KEY))
    if found is None and what == "event" and worker_ctx.args and isinstance(worker_ctx.args[0], dict):
        found = sane_correlation_id(worker_ctx.args[0].get("correlation_id"))
    return found


def _run_worker(original: Any) -> Any:
    def run_worker(self: Any, worker_ctx: Any, handle_result: Any) -> Any:
        kind, what = _worker_kind(worker_ctx.entrypoint)
        parent = context_from(worker_ctx.data.get(TRACEPARENT_KEY))
        correlation_id = _worker_correlation(worker_ctx, what)
        if correlation_id is not None:
            worker_ctx.data[CORRELATION_KEY] = correlation_id  # on to the RPC calls it makes
        name = f"{worker_ctx.service_name}.{worker_ctx.entrypoint.method_name}"
        attributes: dict[str, Any] = {"guichet.service": worker_ctx.service_name, "guichet.entrypoint": what}
        if what == "rpc":
            attributes.update({"rpc.system": "nameko", "rpc.service": worker_ctx.service_name,
                               "rpc.method": worker_ctx.entrypoint.method_name})
        elif what == "event" and worker_ctx.args and isinstance(worker_ctx.args[0], dict):
            message = worker_ctx.args[0]
            attributes.update({"messaging.system": "rabbitmq", "messaging.operation": "process",
                               "guichet.event_type": str(message.get("event_type")),
                               "guichet.event_id": str(message.get("event_id"))})
        started = time.perf_counter()
        failed = False
        with tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attributes) as span, \
                correlation(correlation_id):
            def traced_result(ctx: Any, result: Any, exc_info: Any) -> Any:
                nonlocal failed
                if exc_info is not None:
                    span.record_exception(exc_info[1])
                    if not isinstance(exc_info[1], ctx.entrypoint.expected_exceptions):
                        failed = True
                        span.set_status(Status(StatusCode.ERROR, type(exc_info[1]).__name__))
                return handle_result(ctx, result, exc_info) if handle_result is not None else (result, exc_info)

            try:
                return original(self, worker_ctx, traced_result)
            finally:
                from shared.metrics import observe_worker

                observe_worker(worker_ctx.service_name, worker_ctx.entrypoint.method_name, what, failed,
                               time.perf_counter() - started)

    run_worker.__guichet_traced__ = True  # type: ignore[attr-defined]
    return run_worker


def instrument() -> None:
    """Patch Nameko once: a span per worker and per RPC call, the trace context and the
    correlation id carried in Nameko's context data (its ``nameko.*`` headers)."""
    from nameko import rpc as nameko_rpc
    from nameko.containers import ServiceContainer

    if not getattr(ServiceContainer._run_worker, "__guichet_traced__", False):
        ServiceContainer._run_worker = _run_worker(ServiceContainer._run_worker)
    if not getattr(nameko_rpc.Client.__call__, "__guichet_traced__", False):
        original_call = nameko_rpc.Client._call

        def sync_call(self: Any, *args: Any, **kwargs: Any) -> Any:
            # The span covers the request and the wait for its reply.
            with tracer.start_as_current_span(
                f"{self.service_name}.{self.method_name} call", kind=SpanKind.CLIENT,
                attributes={"rpc.system": "nameko", "rpc.service": str(self.service_name),
                            "rpc.method": str(self.method_name)},
            ) as span:
                try:
                    return _inject(original_call)(self, *args, **kwargs).result()
                except Exception as exc:
                    span.record_exception(exc)
                    raise

        sync_call.__guichet_traced__ = True  # type: ignore[attr-defined]
        nameko_rpc.Client.__call__ = sync_call
        nameko_rpc.Client.call_async = _inject(original_call)  # sent within the worker's span


def _inject(original: Any) -> Any:
    """``Client._call`` with the current span's context in the request's headers."""
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        data = self.context_data
        saved = {key: data.get(key) for key in (TRACEPARENT_KEY, CORRELATION_KEY)}
        if traceparent := current_traceparent():
            data[TRACEPARENT_KEY] = traceparent
        if (correlation_id := current_correlation_id()) and not data.get(CORRELATION_KEY):
            data[CORRELATION_KEY] = correlation_id
        try:
            return original(self, *args, **kwargs)
        finally:
            for key, value in saved.items():
                if value is None:
                    data.pop(key, None)
                else:
                    data[key] = value

    return call


@contextmanager
def span(name: str, *, kind: SpanKind = SpanKind.INTERNAL, parent: str | None = None,
         attributes: Mapping[str, Any] | None = None) -> Iterator[trace.Span]:
    """A span named ``name``, child of ``parent`` (a traceparent) or of the current one;
    an exception escaping the block marks it failed."""
    with tracer.start_as_current_span(name, context=context_from(parent), kind=kind,
                                      attributes=dict(attributes or {})) as current:
        yield current
