"""Routing end to end through the broker: the tickets and routing services running for
real, tickets filed over RPC, routed and assigned by routing's policies."""

from collections import Counter

import eventlet
import kombu
import pytest
from nameko.standalone.rpc import ServiceRpcClient
from nameko.testing.services import entrypoint_waiter

from services.routing.service import RoutingService
from services.tickets.service import TicketsService
from shared import db
from shared.outbox import event_exchange
from tests.helpers import load_routing, person, wait_until

CONFIG = {
    "departments": [
        {"id": "dnum-ent", "label": {"fr": "DNUM - ENT", "en": "IT - ENT"}, "assignment_policy": "least_loaded",
         "managers": [{"user": u, "name": u.title(), "email": f"{u}@univ.example"} for u in ("marc", "mona", "max")]},
        {"id": "scolarite", "label": "Support technique pour les applications de scolarité",
         "assignment_policy": "round_robin",
         "managers": [{"user": "ana"}, {"user": "bea", "available": False}, {"user": "cyl"}]},
        {"id": "impression", "label": "Impression", "managers": [{"user": "ivan"}]},
        {"id": "vide", "label": "Personne", "assignment_policy": "round_robin",
         "managers": [{"user": "zoe", "available": False}]},
        {"id": "referents-ent", "label": "Référents ENT", "per_establishment": True,
         "managers": [{"user": "rene", "establishment": "0540001A"}, {"user": "rita", "establishment": "0880012B"}]},
    ],
    "categories": [
        {"id": "ent", "label": "ENT", "department": "dnum-ent"},
        {"id": "ent-connexion", "parent": "ent", "label": "Problème de connexion"},
        {"id": "apogee", "label": "Apogée", "department": "scolarite"},
        {"id": "impression", "label": "Impression", "department": "impression"},
        {"id": "vide", "label": "Personne", "department": "vide"},
        {"id": "ent-apps", "label": "Applications de l'ENT", "department": "referents-ent"},
    ],
}


@pytest.fixture
def services(container_factory, broker_uri, database_url, tickets_db):
    with db.connect(database_url) as conn:
        load_routing(conn, CONFIG)
    config = {"AMQP_URI": broker_uri, "DATABASE_URL": database_url, "HTTP_ADDRESSES": {
        "tickets": "127.0.0.1:0", "routing": "127.0.0.1:0"}}
    tickets = container_factory(TicketsService, config)
    tickets.start()  # its queue for routing's snapshots exists before routing publishes
    routing = container_factory(RoutingService, config)
    routing.start()

    def copied():
        with tickets_db.connection() as conn:
            return conn.execute("SELECT count(*) AS n FROM tickets.department_managers").fetchone()["n"] == 10

    wait_until(copied, what="the tickets service's copy of the teams")
    return routing


def file_ticket(rpc, category, requester="alice", establishment="0540001A"):
    return rpc.submit(person(requester, establishment), category, "Ça ne marche pas", "Détails.")


def settled(rpc, ticket_id, user="alice", **expected):
    """The ticket once routing has dealt with it (department set, assignee per policy)."""
    def check():
        ticket = rpc.get(person(user), ticket_id)
        ok = ticket["department"] is not None and all(
            (ticket["assignee"] or {}).get("id") == v if k == "assignee" else ticket[k] == v
            for k, v in expected.items()
        )
        return ticket if ok else None

    return wait_until(check, what=f"ticket {ticket_id} to be routed with {expected}")


def test_a_submitted_ticket_reaches_its_team_and_a_manager(services):
    with ServiceRpcClient("tickets") as rpc:
        ticket = file_ticket(rpc, "ent-connexion")
        routed = wait_until(lambda: (t := rpc.get(person("alice"), ticket["id"]))["assignee"] and t,
                            what="an assignee")
    assert routed["department"] == {"id": "dnum-ent", "label": "DNUM - ENT"}  # inherited from "ent"
    assert routed["assignee"]["id"] in {"marc", "mona", "max"}
    assert routed["status"] == "IN_PROGRESS"


def test_per_establishment_teams_and_triage(services):
    with ServiceRpcClient("tickets") as rpc:
        a = file_ticket(rpc, "ent-apps", "alice", "0540001A")
        b = file_ticket(rpc, "ent-apps", "bob", "0880012B")
        c = file_ticket(rpc, "ent-apps", "carl", "0999999Z")
        assert settled(rpc, a["id"], "alice")["department"]["id"] == "referents-ent:0540001A"
        assert settled(rpc, b["id"], "bob")["department"]["id"] == "referents-ent:0880012B"
        assert settled(rpc, c["id"], "carl")["department"]["id"] == "triage"
        # the referents of one establishment see their tickets, not the other's
        assert rpc.can_view(person("rene"), a["id"]) and not rpc.can_view(person("rene"), b["id"])


def test_round_robin_cycles_over_available_managers(services):
    assignees = []
    with ServiceRpcClient("tickets") as rpc:
        for _ in range(4):
            ticket = file_ticket(rpc, "apogee")
            assignees.append(wait_until(
                lambda t=ticket: (rpc.get(person("alice"), t["id"])["assignee"] or {}).get("id"),
                what="an assignee"))
    assert assignees == ["ana", "cyl", "ana", "cyl"]  # bea is unavailable


def test_policy_none_and_no_available_manager_leave_the_ticket_free_in_its_team(services):
    with ServiceRpcClient("tickets") as rpc:
        free = file_ticket(rpc, "impression")
        nobody = file_ticket(rpc, "vide")
        for ticket, team in ((free, "impression"), (nobody, "vide")):
            routed = settled(rpc, ticket["id"])
            assert (routed["department"]["id"], routed["status"], routed["assignee"]) == (team, "FREE", None)


def file_many(count, clients=10, category="ent-connexion"):
    """File ``count`` tickets from ``clients`` concurrent clients (a standalone RPC client
    is not safe to share between green threads: each has its own)."""
    def file_some(first):
        with ServiceRpcClient("tickets") as rpc:
            return [file_ticket(rpc, category, f"user{i}") for i in range(first, count, clients)]

    return [t for batch in eventlet.GreenPool(clients).imap(file_some, range(clients)) for t in batch]


def test_least_loaded_spreads_300_tickets_evenly(services):
    tickets = file_many(300)
    with ServiceRpcClient("tickets") as rpc:
        def assignees():
            found = [(rpc.get(person(t["requester"]["id"]), t["id"])["assignee"] or {}).get("id") for t in tickets]
            return found if all(found) else None

        counts = Counter(wait_until(assignees, timeout=120, what="300 assignments"))
    assert set(counts) == {"marc", "mona", "max"}
    assert max(counts.values()) - min(counts.values()) <= 2, counts  # 100 each, plus or minus 1


def test_moving_a_ticket_reroutes_it_and_frees_it_from_an_assignee_of_the_old_team(services):
    with ServiceRpcClient("tickets") as rpc:
        ticket = file_ticket(rpc, "ent-connexion")
        assignee = wait_until(lambda: rpc.get(person("alice"), ticket["id"])["assignee"], what="an assignee")
        rpc.move(person(assignee["id"]), ticket["id"], "impression")
        moved = settled(rpc, ticket["id"], department={"id": "impression", "label": "Impression"})
        history = [h["type"] for h in rpc.history(person("alice"), ticket["id"])]
    assert (moved["status"], moved["assignee"]) == ("FREE", None)
    assert history[-3:] == ["TicketMoved", "TicketRouted", "TicketReleased"], history


def submitted_event(pool) -> dict:
    """The (only) ``TicketSubmitted`` message the tickets service published."""
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT payload, global_position FROM tickets.outbox WHERE routing_key = 'TicketSubmitted'"
        ).fetchone()
    return {**row["payload"], "global_position": row["global_position"]}


def redeliver(routing, broker_uri, message) -> None:
    """Publish ``message`` again and wait for routing's worker; raises what it raised."""
    with entrypoint_waiter(routing, "on_ticket_event", timeout=10) as result:
        with kombu.Connection(broker_uri) as conn:
            conn.Producer().publish(message, exchange=event_exchange(), routing_key=message["event_type"],
                                    serializer="json")
    result.get()


def test_a_redelivered_ticket_submitted_routes_once(services, broker_uri, tickets_db):
    with ServiceRpcClient("tickets") as rpc:
        ticket = file_ticket(rpc, "apogee")
        settled(rpc, ticket["id"], status="IN_PROGRESS")
        redeliver(services, broker_uri, submitted_event(tickets_db))
        types = Counter(h["type"] for h in rpc.history(person("alice"), ticket["id"]))
    assert types["TicketRouted"] == 1 and types["TicketAssigned"] == 1


def test_a_redelivery_after_routing_died_mid_assignment_asks_for_the_same_assignee(services, broker_uri, tickets_db):
    """Routing died after the assignment but before it recorded the event as handled:
    the redelivered event replays ``route`` (whose stored answer has no assignee yet)
    and must ask for the assignee it chose, though round robin has moved on since;
    choosing again would reuse the idempotency key for another request."""
    with ServiceRpcClient("tickets") as rpc:
        ticket = file_ticket(rpc, "apogee")
        assignee = settled(rpc, ticket["id"], status="IN_PROGRESS")["assignee"]["id"]
        message = submitted_event(tickets_db)
        with tickets_db.connection() as conn:
            conn.execute("DELETE FROM routing.processed_events WHERE event_id = %s", (message["event_id"],))
        redeliver(services, broker_uri, message)  # raised IdempotencyKeyReused before the decision was kept
        history = rpc.history(person("alice"), ticket["id"])
    assert [h["data"]["assignee"]["id"] for h in history if h["type"] == "TicketAssigned"] == [assignee]


def test_a_kept_decision_the_ticket_now_refuses_is_made_again(services, broker_uri, tickets_db):
    """As if routing died after deciding but before its call reached the tickets service,
    and the chosen manager left the team meanwhile: the redelivered event asks for the
    kept assignee, is refused, and routing chooses again under the same key."""
    with ServiceRpcClient("tickets") as rpc:
        ticket = file_ticket(rpc, "apogee")
        first = settled(rpc, ticket["id"], status="IN_PROGRESS")["assignee"]["id"]
        message = submitted_event(tickets_db)
        event_id = message["event_id"]
        with tickets_db.connection() as conn:
            conn.execute("DELETE FROM routing.processed_events WHERE event_id = %s", (event_id,))
            conn.execute("DELETE FROM tickets.idempotency_keys WHERE key = %s", (f"assign:{event_id}",))
            conn.execute("UPDATE routing.assignment_decisions SET assignee_id = 'zoe' WHERE event_id = %s", (event_id,))
        redeliver(services, broker_uri, message)
        assigned = [h["data"]["assignee"]["id"] for h in rpc.history(person("alice"), ticket["id"])
                    if h["type"] == "TicketAssigned"]
    with tickets_db.connection() as conn:
        kept = conn.execute("SELECT assignee_id FROM routing.assignment_decisions WHERE event_id = %s",
                            (event_id,)).fetchone()["assignee_id"]
    assert assigned[0] == first and assigned[-1] == kept and kept in {"ana", "cyl"} and kept != first


def test_a_poison_event_goes_to_the_dead_letter_queue_and_routing_goes_on(services, broker_uri):
    """An event routing can never handle (no ticket summary) ends in
    ``routing.ticket-events.dead-letters`` with its error, and the next ticket routes."""
    with kombu.Connection(broker_uri) as conn:
        conn.Producer().publish({"event_id": "not-a-ticket-event", "event_type": "TicketSubmitted"},
                                exchange=event_exchange(), routing_key="TicketSubmitted", serializer="json")
        dead = conn.SimpleQueue("routing.ticket-events.dead-letters")
        try:
            letter = dead.get(timeout=20)
            assert letter.payload["event_id"] == "not-a-ticket-event"
            assert letter.headers["x-guichet-error-type"] == "KeyError"
            letter.ack()
        finally:
            dead.close()
    with ServiceRpcClient("tickets") as rpc:
        ticket = file_ticket(rpc, "apogee")
        assert settled(rpc, ticket["id"])["department"]["id"] == "scolarite"
