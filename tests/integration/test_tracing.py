"""One ticket, one trace and one correlation id, across every service: the tickets,
routing and notifier services running for real (HTTP on a free port, RPC and events
over a throwaway vhost, the acknowledgement email received by aiosmtpd), the spans
collected by an in-memory exporter installed as the process's tracer provider."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.notifier.service import NotifierService
from services.routing.service import RoutingService
from services.tickets.service import TicketsService
from shared import db
from shared.tracing import configure_tracing, instrument_psycopg
from tests.e2e.conftest import ALICE, SECRET, Api
from tests.helpers import SmtpServer, free_port, load_routing, wait_until
from tests.integration.test_notifier_delivery import NOTIFIER_TABLES, notifier_config

CONFIG = {
    "departments": [
        {"id": "dnum-ent", "label": "DNUM - ENT", "assignment_policy": "round_robin",
         "managers": [{"user": "marc", "name": "Marc", "email": "marc@univ.example"}]},
    ],
    "categories": [{"id": "ent-connexion", "label": "Problème de connexion", "department": "dnum-ent"}],
}

_EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    # The global provider can be set once per process: every test module shares it.
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    if not getattr(provider, "_guichet_test_exporter", None):
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        instrument_psycopg()  # as configure_tracing does: a span per SQL statement
        provider._guichet_test_exporter = _EXPORTER  # type: ignore[attr-defined]
    yield provider._guichet_test_exporter  # type: ignore[attr-defined]
    # The rest of the suite runs without SQL spans, and keeps no more spans in memory.
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

    PsycopgInstrumentor().uninstrument()
    _EXPORTER.clear()
    _EXPORTER.shutdown()


@pytest.fixture
def smtp():
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def guichet(container_factory, broker_uri, database_url, tickets_db, smtp, monkeypatch, spans):
    monkeypatch.setenv("GUICHET_JWT_SECRET", SECRET)
    with db.connect(database_url) as conn:
        load_routing(conn, CONFIG, NOTIFIER_TABLES)
    port = free_port()
    config = notifier_config(broker_uri, database_url, SMTP_URL=f"smtp://127.0.0.1:{smtp.port}",
                             HTTP_ADDRESSES={"tickets": f"127.0.0.1:{port}", "routing": "127.0.0.1:0",
                                             "notifier": "127.0.0.1:0"})
    container_factory(NotifierService, config).start()
    container_factory(TicketsService, config).start()
    container_factory(RoutingService, config).start()

    def copied():
        with tickets_db.connection() as conn:
            return conn.execute("SELECT (SELECT count(*) FROM notifier.team_managers)"
                                " + (SELECT count(*) FROM tickets.department_managers) AS n").fetchone()["n"] == 2

    wait_until(copied, what="the copies of the teams")
    spans.clear()
    return Api(f"http://127.0.0.1:{port}")


def stream_events(pool, ticket_id):
    with pool.connection() as conn:
        return conn.execute(
            "SELECT event_type, metadata FROM tickets.events WHERE stream_id = %s ORDER BY stream_version",
            (f"ticket-{ticket_id}",)).fetchall()


def test_every_event_of_a_ticket_carries_the_correlation_id_of_its_request(guichet, tickets_db):
    response = guichet.post("/api/v1/tickets", ALICE, json={
        "category_id": "ent-connexion", "subject": "Connexion impossible", "description": "Écran blanc."},
        headers={"X-Correlation-Id": "req-42-abc"})
    assert response.status_code == 201, response.text
    assert response.headers["X-Correlation-Id"] == "req-42-abc"
    ticket_id = response.json()["id"]
    # Submitted, then routed and assigned by routing over RPC (two more hops).
    events = wait_until(lambda: (e := stream_events(tickets_db, ticket_id)) and len(e) >= 3 and e,
                        what="the ticket to be routed and assigned")
    assert [e["event_type"] for e in events][:3] == ["TicketSubmitted", "TicketRouted", "TicketAssigned"]
    assert {e["metadata"]["correlation_id"] for e in events} == {"req-42-abc"}
    # routing's events were caused by the event before them
    assert events[1]["metadata"]["causation_id"] is not None


def test_a_request_without_correlation_id_gets_one_echoed_and_kept(guichet, tickets_db):
    response = guichet.post("/api/v1/tickets", ALICE, json={
        "category_id": "ent-connexion", "subject": "Connexion impossible", "description": "Écran blanc."})
    assert response.status_code == 201, response.text
    given = response.headers["X-Correlation-Id"]
    assert len(given) == 36
    events = wait_until(lambda: (e := stream_events(tickets_db, response.json()["id"])) and len(e) >= 3 and e,
                        what="the ticket to be routed and assigned")
    assert {e["metadata"]["correlation_id"] for e in events} == {given}
    # An unsane one is replaced, not echoed.
    bad = requests.get(guichet.base_url + "/api/v1/openapi.json", headers={"X-Correlation-Id": "x" * 500}, timeout=10)
    assert bad.headers["X-Correlation-Id"] != "x" * 500


def test_one_trace_from_post_tickets_to_the_acknowledgement_email(guichet, tickets_db, smtp, spans):
    response = guichet.post("/api/v1/tickets", ALICE, json={
        "category_id": "ent-connexion", "subject": "Trace", "description": "Une trace."})
    assert response.status_code == 201, response.text
    ticket_id = response.json()["id"]
    wait_until(lambda: any("alice@univ.example" in str(m["To"]) for m in smtp.inbox.messages), what="the acknowledgement")

    def named(prefix):
        return [s for s in spans.get_finished_spans() if s.name.startswith(prefix)]

    http = [s for s in named("POST /api/v1/tickets") if s.kind == trace.SpanKind.SERVER]
    assert len(http) == 1
    trace_id = http[0].context.trace_id

    def finished(name):
        return [s for s in named(name) if s.context.trace_id == trace_id]

    # Spans are exported once finished: wait for the last ones (routing's handling of
    # TicketSubmitted ends after its two RPC calls; the sender's send).
    wait_until(lambda: finished("smtp send") and len(finished("routing.on_ticket_event")) >= 3,
               what="routing's handling and the SMTP send to finish")
    by_id = {s.context.span_id: s for s in spans.get_finished_spans() if s.context.trace_id == trace_id}

    def ancestors(span):
        chain = []
        while span.parent is not None:
            span = by_id[span.parent.span_id]  # KeyError: a parent outside the trace
            chain.append(span)
        return chain

    # The relay's publish of TicketSubmitted, child (through the command) of the HTTP span.
    publish = [s for s in named("TicketSubmitted publish") if s.context.trace_id == trace_id]
    assert publish and http[0] in ancestors(publish[0])
    # routing handles it, under the publish; its RPC calls, under its handling; the
    # tickets service's RPC workers under those calls.
    handled = [s for s in finished("routing.on_ticket_event") if s.parent.span_id == publish[0].context.span_id]
    assert len(handled) == 1
    calls = [s for s in finished("tickets.route call") if s.parent.span_id == handled[0].context.span_id]
    assert len(calls) == 1 and calls[0].kind == trace.SpanKind.CLIENT
    served = [s for s in finished("tickets.route") if s.kind == trace.SpanKind.SERVER]
    assert served and served[0].parent.span_id == calls[0].context.span_id
    assert [s for s in finished("tickets.assign call") if s.parent.span_id == handled[0].context.span_id]
    replies = [s for s in named("tickets.route reply") if s.context.trace_id == trace_id]
    assert replies and replies[0].parent.span_id == served[0].context.span_id
    # The notifier handles TicketSubmitted and its sender's SMTP span continues the trace.
    notified = [s for s in named("notifier.") if s.kind == trace.SpanKind.CONSUMER and s.context.trace_id == trace_id]
    assert notified
    sent = [s for s in named("smtp send") if s.context.trace_id == trace_id]
    assert sent, "the SMTP send is not in the request's trace"
    assert any(n in ancestors(sent[0]) for n in notified)
    # The SQL statements are spans too: the append of TicketSubmitted (one WITH ... INSERT
    # statement) under the HTTP request's worker.
    worker = [s for s in finished("tickets.create_ticket")]
    sql = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id
           and s.attributes.get("db.system") == "postgresql"]
    assert any(worker[0] in ancestors(s) and "events" in str(s.attributes.get("db.statement", "")) for s in sql), \
        [s.name for s in sql]
    # Each event of the stream carries the trace context it was written in.
    events = stream_events(tickets_db, ticket_id)
    assert all(int(e["metadata"]["traceparent"].split("-")[1], 16) == trace_id for e in events)


def test_tracing_is_off_unless_an_otlp_endpoint_is_configured():
    assert configure_tracing("tickets", {}) is False
    assert configure_tracing("tickets", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318",
                                         "OTEL_SDK_DISABLED": "true"}) is False
    assert configure_tracing("tickets", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318",
                                         "OTEL_TRACES_EXPORTER": "none"}) is False


def test_with_an_otlp_endpoint_spans_are_exported_over_http():
    """configure_tracing from the OTEL_* variables, in a process of its own (the tracer
    provider is set once per process), exporting to a tiny OTLP/HTTP receiver here."""
    import http.server
    import os
    import subprocess
    import sys
    import threading

    received: list[tuple[str, str, bytes]] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    script = (
        "from opentelemetry import trace\n"
        "from shared.tracing import configure_tracing\n"
        "assert configure_tracing('tickets')\n"
        "with trace.get_tracer('t').start_as_current_span('hello-otlp'): pass\n"
        "trace.get_tracer_provider().force_flush()\n"
    )
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_port}"}
    env.pop("OTEL_SDK_DISABLED", None)
    try:
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        [(path, content_type, body)] = received
        assert path == "/v1/traces" and content_type == "application/x-protobuf"
        assert b"hello-otlp" in body and b"guichet-tickets" in body
    finally:
        server.shutdown()
