"""``services.escalation.storage.due_timers`` on the real PostgreSQL: a first-response
deadline counts working hours, and timers that the wall-clock prefilter lets through but
that are not due yet (a weekend's worth) never hide one that is due behind them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from services.escalation import storage
from shared.calendar import WorkingCalendar, parse_working_hours

CALENDAR = WorkingCalendar(slots=parse_working_hours("08:30-12:00,13:30-17:30"), timezone="Europe/Paris")
MONDAY_1101_PARIS = datetime(2026, 11, 30, 10, 1, tzinfo=UTC)


@pytest.fixture
def conn(pool):
    with pool.connection() as conn:
        conn.execute("TRUNCATE escalation.timers, escalation.tickets, escalation.settings")
        conn.execute(
            "INSERT INTO escalation.settings (establishment, enabled, support_department_id,"
            " first_response_hours) VALUES ('0540001A', true, 'support-ent', 4)"
        )
        yield conn
        conn.execute("TRUNCATE escalation.timers, escalation.tickets, escalation.settings")


def first_response_timer(conn, started_at: datetime) -> str:
    ticket_id, event_id = uuid4(), uuid4()
    conn.execute("INSERT INTO escalation.tickets (ticket_id, version) VALUES (%s, 1)", (ticket_id,))
    conn.execute(
        "INSERT INTO escalation.timers (event_id, ticket_id, kind, stream_version, started_at, team, establishment)"
        " VALUES (%s, %s, 'first_response', 1, %s, 'referents-ent:0540001A', '0540001A')",
        (event_id, ticket_id, started_at),
    )
    return str(event_id)


def due(conn, now: datetime, limit: int = 50) -> set[str]:
    with conn.transaction():
        return {str(t["event_id"]) for t in storage.due_timers(conn, now, limit, calendar=CALENDAR)}


def test_friday_afternoon_is_due_on_monday_in_working_hours(conn):
    friday = first_response_timer(conn, datetime(2026, 11, 27, 15, 0, tzinfo=UTC))  # 16:00 in Paris
    assert due(conn, datetime(2026, 11, 27, 19, 30, tzinfo=UTC)) == set()  # 4 h by the clock
    assert due(conn, datetime(2026, 11, 29, 12, 0, tzinfo=UTC)) == set()  # Sunday
    assert due(conn, MONDAY_1101_PARIS - timedelta(minutes=2)) == set()  # Monday 10:59 in Paris
    assert due(conn, MONDAY_1101_PARIS) == {friday}


def test_timers_not_yet_due_in_working_hours_do_not_hide_a_due_one(conn):
    # Saturday submissions come first in started_at order and pass the wall-clock
    # prefilter on Sunday evening, but their 4 working hours end on Monday at noon.
    for hour in range(5):
        first_response_timer(conn, datetime(2026, 11, 28, 8 + hour, 0, tzinfo=UTC))
    # An establishment with a 1 h deadline, submitted later on Saturday: due on Monday 09:30.
    conn.execute(
        "INSERT INTO escalation.settings (establishment, enabled, support_department_id,"
        " first_response_hours) VALUES ('0880012B', true, 'support-ent', 1)"
    )
    late = first_response_timer(conn, datetime(2026, 11, 28, 20, 0, tzinfo=UTC))
    conn.execute("UPDATE escalation.timers SET establishment = '0880012B' WHERE event_id = %s", (late,))
    assert due(conn, datetime(2026, 11, 30, 9, 0, tzinfo=UTC), limit=2) == {late}  # Monday 10:00 in Paris


def test_wall_clock_timers_are_unchanged(conn):
    ticket_id, event_id = uuid4(), uuid4()
    conn.execute("INSERT INTO escalation.tickets (ticket_id, version) VALUES (%s, 1)", (ticket_id,))
    saturday = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    conn.execute(
        "INSERT INTO escalation.timers (event_id, ticket_id, kind, stream_version, started_at, due_at)"
        " VALUES (%s, %s, 'expire_closure', 1, %s, %s)",
        (event_id, ticket_id, saturday - timedelta(days=5), saturday),
    )
    assert due(conn, saturday) == {str(event_id)}  # a weekend does not stop a closure from expiring
