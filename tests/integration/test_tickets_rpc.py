"""The tickets Nameko service over the real RabbitMQ and PostgreSQL: RPC calls by an
explicit actor, typed errors back, and events reaching a Nameko event handler."""

import pytest
from nameko.events import event_handler
from nameko.standalone.rpc import ServiceRpcClient
from nameko.testing.services import entrypoint_waiter

from services.tickets import domain
from services.tickets.commands import TicketNotFound
from services.tickets.service import TicketsService
from tests.conftest import add_manager

ALICE = {"id": "alice", "name": "Alice Martin", "email": "alice@univ.example", "establishment": "0540001A"}
MARC = {"id": "marc", "name": "Marc Leroy", "email": "marc@univ.example"}
ROUTING = {"id": "system:routing", "name": "routing", "kind": "system"}


class Listener:
    """Stands for routing or the notifier: a Nameko service subscribed to ticket events."""

    name = "listener"
    received: list[dict] = []

    @event_handler("tickets", "TicketSubmitted")
    def on_submitted(self, payload):
        Listener.received.append(payload)


@pytest.fixture
def tickets_service(container_factory, broker_uri, database_url, tickets_db):
    add_manager(tickets_db, "dnum-ent", "marc", "Marc Leroy")
    container = container_factory(TicketsService, {"AMQP_URI": broker_uri, "DATABASE_URL": database_url})
    container.start()
    return container


def test_rpc_workflow_and_typed_errors(tickets_service):
    with ServiceRpcClient("tickets") as tickets:
        ticket = tickets.submit(ALICE, "ent-connexion", "Connexion impossible", "Depuis ce matin.")
        assert ticket["status"] == "FREE" and ticket["number"] == 1000
        tickets.route(ROUTING, ticket["id"], "dnum-ent", causation_id="evt-1")
        taken = tickets.take(MARC, ticket["number"], idempotency_key="take-1")
        assert taken["status"] == "IN_PROGRESS" and taken["assignee"]["id"] == "marc"
        assert tickets.take(MARC, ticket["number"], idempotency_key="take-1") == taken

        with pytest.raises(domain.Forbidden) as forbidden:
            tickets.take(ALICE, ticket["id"])
        assert forbidden.value.action == "take" and forbidden.value.status == "IN_PROGRESS"
        with pytest.raises(domain.InvalidArgument) as invalid:
            tickets.request_closure(MARC, ticket["id"], "   ")
        assert invalid.value.field == "resolution"
        with pytest.raises(TicketNotFound):
            tickets.get({"id": "bob"}, ticket["id"])
        with pytest.raises(domain.InvalidArgument):
            tickets.get({"name": "no id"}, ticket["id"])

        assert tickets.can_view(MARC, ticket["id"]) is True
        history = tickets.history(ALICE, ticket["id"])
        assert [h["type"] for h in history] == ["TicketSubmitted", "TicketRouted", "TicketAssigned"]


def test_events_reach_a_nameko_event_handler_with_the_ticket_summary(tickets_service, container_factory):
    Listener.received.clear()
    listener = container_factory(Listener)
    listener.start()
    with entrypoint_waiter(listener, "on_submitted", timeout=10):
        with ServiceRpcClient("tickets") as tickets:
            ticket = tickets.submit(ALICE, "ent-connexion", "Connexion impossible", "Depuis ce matin.")
    [message] = Listener.received
    assert message["event_type"] == "TicketSubmitted"
    assert message["stream_id"] == f"ticket-{ticket['id']}"
    assert message["actor"] == {"id": "alice", "name": "Alice Martin", "kind": "user"}
    assert message["ticket"]["number"] == ticket["number"]
    assert message["ticket"]["status"] == "FREE"
    assert message["data"]["subject"] == "Connexion impossible"
