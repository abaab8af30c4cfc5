"""The tickets service layer on the real PostgreSQL: one transaction per command,
ticket numbers, idempotency keys, races on the stream version, the inline view."""

import eventlet
import pytest

from services.tickets import domain
from services.tickets.commands import (
    Conflict,
    IdempotencyKeyReused,
    TicketCommands,
    TicketNotFound,
    UnknownUser,
    VersionMismatch,
)
from shared.eventstore import EventStore
from tests.conftest import add_manager

ALICE = domain.Actor("alice", "Alice Martin", "alice@univ.example", establishment="0540001A")
BOB = domain.Actor("bob", "Bob Durand", "bob@univ.example")
MARC = domain.Actor("marc", "Marc Leroy", "marc@univ.example")
ROUTING = domain.Actor.system("routing")
NEW_TICKET = {"category_id": "ent-connexion", "subject": "Connexion impossible", "description": "Rien ne marche."}


@pytest.fixture
def commands(tickets_db):
    add_manager(tickets_db, "dnum-ent", "marc", "Marc Leroy")
    add_manager(tickets_db, "dnum-ent", "mona", "Mona Blanc")
    return TicketCommands(tickets_db)


def events_of(pool, ticket_id):
    with pool.connection() as conn:
        return EventStore().load(conn, f"ticket-{ticket_id}")


def test_submit_gives_numbers_from_a_sequence_and_a_visible_view(commands):
    first = commands.execute("submit", ALICE, args=NEW_TICKET)
    second = commands.execute("submit", ALICE, args=NEW_TICKET)
    assert (first["number"], second["number"]) == (1000, 1001)
    assert first["status"] == "FREE" and first["version"] == 1
    assert first["requester"] == {"id": "alice", "name": "Alice Martin", "email": "alice@univ.example"}
    assert first["establishment"] == "0540001A"
    assert commands.get(ALICE, first["id"]) == first
    assert commands.get(ALICE, str(first["number"]))["id"] == first["id"]


def test_a_workflow_through_the_service_layer(commands):
    ticket = commands.execute("submit", ALICE, args=NEW_TICKET)
    commands.execute("route", ROUTING, ticket["id"], {"department_id": "dnum-ent"})
    commands.execute("assign", ROUTING, ticket["id"], {"assignee": "marc"})
    asked = commands.execute("request_information", MARC, ticket["id"], {"question": "Quel navigateur ?"})
    assert asked["status"] == "WAITING_FOR_INFO"
    answered = commands.execute("comment", ALICE, ticket["id"], {"comment_id": "c1", "body": "Firefox 140"})
    assert answered["status"] == "IN_PROGRESS"
    commands.execute("request_closure", MARC, ticket["id"], {"resolution": "Cache vidé."})
    closed = commands.execute("approve_closure", ALICE, ticket["id"], {"rating": 5})
    assert (closed["status"], closed["resolution"], closed["rating"]) == ("CLOSED", "approved", 5)
    history = commands.history(ALICE, ticket["id"])
    assert [h["type"] for h in history] == [
        "TicketSubmitted", "TicketRouted", "TicketAssigned", "InformationRequested",
        "CommentAdded", "InformationProvided", "ClosureRequested", "ClosureApproved",
    ]
    assert history[3]["status_before"] == "IN_PROGRESS" and history[3]["status_after"] == "WAITING_FOR_INFO"
    assert [e.stream_version for e in events_of(commands.pool, ticket["id"])] == list(range(1, 9))


def test_invisible_and_unknown_tickets_look_the_same(commands):
    ticket = commands.execute("submit", ALICE, args=NEW_TICKET)
    for ref in (ticket["id"], "00000000-0000-0000-0000-000000000000", "999999", "not-a-ticket"):
        with pytest.raises(TicketNotFound):
            commands.execute("comment", BOB, ref, {"comment_id": "c", "body": "hello"})
        with pytest.raises(TicketNotFound):
            commands.get(BOB, ref)
    assert commands.can_view(BOB, ticket["id"]) is False
    assert commands.can_view(ALICE, ticket["id"]) is True


def test_a_refused_action_appends_nothing(commands):
    ticket = commands.execute("submit", ALICE, args=NEW_TICKET)
    with pytest.raises(domain.Forbidden):
        commands.execute("take", ALICE, ticket["id"])
    with pytest.raises(UnknownUser):
        commands.execute("invite", ALICE, ticket["id"], {"user": "nobody"})
    assert len(events_of(commands.pool, ticket["id"])) == 1


def test_internal_comments_are_hidden_from_the_requester(commands):
    ticket = commands.execute("submit", ALICE, args=NEW_TICKET)
    commands.execute("route", ROUTING, ticket["id"], {"department_id": "dnum-ent"})
    commands.execute("comment", MARC, ticket["id"], {"comment_id": "i1", "body": "VIP", "visibility": "internal"})
    assert [c["id"] for c in commands.get(MARC, ticket["id"])["comments"]] == ["i1"]
    assert commands.get(ALICE, ticket["id"])["comments"] == []
    assert "CommentAdded" not in [h["type"] for h in commands.history(ALICE, ticket["id"])]


def test_a_repeated_idempotency_key_returns_the_first_result_and_appends_nothing(commands):
    first = commands.execute("submit", ALICE, args=NEW_TICKET, idempotency_key="k1")
    again = commands.execute("submit", ALICE, args=NEW_TICKET, idempotency_key="k1")
    assert again == first
    other = commands.execute("submit", BOB, args=NEW_TICKET, idempotency_key="k1")  # keys are per actor
    assert other["id"] != first["id"]
    with pytest.raises(IdempotencyKeyReused):
        commands.execute("submit", ALICE, args={**NEW_TICKET, "subject": "Autre"}, idempotency_key="k1")
    with commands.pool.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM tickets.events").fetchone()["n"] == 2


def test_concurrent_requests_with_one_idempotency_key_file_one_ticket(commands):
    results = [eventlet.spawn(commands.execute, "submit", ALICE, None, NEW_TICKET, idempotency_key="same") for _ in range(6)]
    ids = {r.wait()["id"] for r in results}
    assert len(ids) == 1
    with commands.pool.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM tickets.ticket_view").fetchone()["n"] == 1


def test_if_match_with_a_stale_version_fails(commands):
    ticket = commands.execute("submit", ALICE, args=NEW_TICKET)
    commands.execute("change_priority", ALICE, ticket["id"], {"priority": 4}, expected_version=1)
    with pytest.raises(VersionMismatch):
        commands.execute("change_priority", ALICE, ticket["id"], {"priority": 5}, expected_version=1)


class GatedStore(EventStore):
    """Holds the first ``n`` loads until all have loaded, so their commands decide on
    the same version."""

    def __init__(self, n: int) -> None:
        super().__init__("tickets")
        self.loads = 0
        self.waiting = n
        self.gate = eventlet.event.Event()

    def load(self, conn, stream_id, after_version=0):
        events = super().load(conn, stream_id, after_version)
        self.loads += 1
        if self.waiting > 0:
            self.waiting -= 1
            if self.waiting == 0:
                self.gate.send()
            self.gate.wait()
        return events


def test_two_concurrent_commands_both_apply_in_order_with_no_version_gap(commands):
    ticket = commands.execute("submit", ALICE, args=NEW_TICKET)
    store = GatedStore(2)
    racing = TicketCommands(commands.pool, store)
    a = eventlet.spawn(racing.execute, "comment", ALICE, ticket["id"], {"comment_id": "a", "body": "un"})
    b = eventlet.spawn(racing.execute, "change_priority", ALICE, ticket["id"], {"priority": 5})
    a.wait()
    b.wait()
    assert store.loads == 3  # both decided on version 1; the loser reloaded once
    events = events_of(commands.pool, ticket["id"])
    assert [e.stream_version for e in events] == [1, 2, 3]
    assert sorted(e.event_type for e in events[1:]) == ["CommentAdded", "PriorityChanged"]
    final = commands.get(ALICE, ticket["id"])
    assert (final["version"], final["priority"], len(final["comments"])) == (3, 5, 1)


def test_a_command_that_keeps_losing_answers_conflict(commands):
    ticket = commands.execute("submit", ALICE, args=NEW_TICKET)

    class AlwaysBehind(EventStore):
        def load(self, conn, stream_id, after_version=0):
            events = super().load(conn, stream_id, after_version)
            # Someone else appends right after every load.
            with commands.pool.connection() as other:
                EventStore().append(other, stream_id, len(events), [_priority_event(len(events))])
            return events

    with pytest.raises(Conflict):
        TicketCommands(commands.pool, AlwaysBehind()).execute("cancel", ALICE, ticket["id"])


def _priority_event(n):
    from shared.eventstore import NewEvent

    return NewEvent(
        "PriorityChanged",
        {"priority": 2 + n % 3, "previous_priority": 3},
        {"actor": {"id": "bob", "name": None, "email": None, "kind": "user"}, "occurred_at": "2026-11-23T10:00:00+00:00"},
    )
