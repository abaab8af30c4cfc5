"""The event store on the real PostgreSQL: append with an expected version, load, read all."""

import psycopg
import pytest

from shared.eventstore import ConcurrencyError, EventStore, NewEvent, Statement

store = EventStore("tickets")


def event(n: int, message: bool = False) -> NewEvent:
    return NewEvent("CommentAdded", {"n": n}, {"actor": {"id": "alice"}}, message={"n": n} if message else None)


def test_append_then_load_gives_the_stream_in_order(tickets_db):
    with tickets_db.connection() as conn:
        first = store.append(conn, "ticket-a", 0, [event(1), event(2)])
        store.append(conn, "ticket-b", 0, [event(9)])
        second = store.append(conn, "ticket-a", 2, [event(3)])
        loaded = store.load(conn, "ticket-a")
    assert [e.stream_version for e in first + second] == [1, 2, 3]
    assert [e.data["n"] for e in loaded] == [1, 2, 3]
    assert [e.event_id for e in loaded] == [e.event_id for e in first + second]
    assert loaded[0].global_position < loaded[1].global_position < loaded[2].global_position


@pytest.mark.parametrize("expected_version", [0, 1, 3])
def test_append_at_a_wrong_version_is_a_typed_conflict_and_writes_nothing(tickets_db, expected_version):
    with tickets_db.connection() as conn:
        store.append(conn, "ticket-a", 0, [event(1), event(2)])
    with pytest.raises(ConcurrencyError) as raised, tickets_db.connection() as conn, conn.transaction():
        store.append(conn, "ticket-a", expected_version, [event(3)])
    assert raised.value.stream_id == "ticket-a"
    with tickets_db.connection() as conn:
        assert [e.stream_version for e in store.load(conn, "ticket-a")] == [1, 2]


def test_read_all_pages_through_every_stream_in_global_order(tickets_db):
    with tickets_db.connection() as conn:
        for i in range(25):
            store.append(conn, f"ticket-{i % 4}", i // 4, [event(i)])
        batches = list(store.read_all(conn, 0, batch_size=10))
        later = [e for b in store.read_all(conn, batches[0][-1].global_position, 100) for e in b]
    assert [len(b) for b in batches] == [10, 10, 5]
    assert [e.data["n"] for b in batches for e in b] == list(range(25))
    assert [e.data["n"] for e in later] == list(range(10, 25))


def test_events_are_append_only(tickets_db):
    with tickets_db.connection() as conn:
        store.append(conn, "ticket-a", 0, [event(1)])
    for statement in ("UPDATE tickets.events SET data = '{}'", "DELETE FROM tickets.events"):
        with pytest.raises(psycopg.errors.RaiseException), tickets_db.connection() as conn:
            conn.execute(statement)


def test_outbox_rows_and_extra_statements_are_written_with_the_events_or_not_at_all(tickets_db):
    mark = Statement("INSERT INTO tickets.users (id) VALUES (%(who)s)", {"who": "witness"})
    with tickets_db.connection() as conn:
        store.append(conn, "ticket-a", 0, [event(1, True), event(2, True), event(3)], [mark])
    with pytest.raises(ConcurrencyError), tickets_db.connection() as conn:
        # a stale version: the events, their outbox rows and the extra write all fail
        other = Statement("INSERT INTO tickets.users (id) VALUES (%(who)s)", {"who": "nobody"})
        store.append(conn, "ticket-a", 1, [event(4, True)], [other])
    with tickets_db.connection() as conn:
        rows = conn.execute(
            "SELECT o.routing_key, o.payload, e.stream_id FROM tickets.outbox o"
            " JOIN tickets.events e USING (global_position) ORDER BY global_position"
        ).fetchall()
        users = [r["id"] for r in conn.execute("SELECT id FROM tickets.users").fetchall()]
    assert [(r["stream_id"], r["payload"]) for r in rows] == [("ticket-a", {"n": 1}), ("ticket-a", {"n": 2})]
    assert {r["routing_key"] for r in rows} == {"CommentAdded"}
    assert users == ["witness"]


def test_a_version_gap_is_refused_by_the_database_itself(tickets_db):
    with tickets_db.connection() as conn:
        store.append(conn, "ticket-a", 0, [event(1)])
        with pytest.raises(psycopg.Error, match="has no version 2"):
            conn.execute(
                "INSERT INTO tickets.events (event_id, stream_id, stream_version, event_type, schema_version,"
                " data, metadata) VALUES (gen_random_uuid(), 'ticket-a', 3, 'X', 1, '{}', '{}')"
            )
