"""Each ticket's facts on the fixed history (``tests/data/reporting/history.json``),
computed by hand. Working hours: 08:30-12:00 and 13:30-17:30, Europe/Paris; 1 May,
Ascension (14 May 2026) and Whit Monday (25 May 2026) are public holidays."""

from __future__ import annotations

import random
from datetime import datetime

import pytest

from services.reporting.facts import Facts, project
from shared.calendar import WorkingCalendar
from tests.unit.reporting.history import events_by_ticket

CAL = WorkingCalendar()
H = 3600


@pytest.fixture(scope="module")
def facts() -> dict[str, Facts]:
    return {k: project(k, events, CAL) for k, events in events_by_ticket().items()}


def spans(f: Facts) -> list[tuple[str, float | None, float | None]]:
    return [(p.status, p.seconds and p.seconds / H, p.working_seconds and p.working_seconds / H) for p in f.periods]


def test_ticket_a_over_a_weekend_and_labour_day(facts):
    a = facts["A"]
    assert (a.department_id, a.category_id, a.assignee_id, a.establishment) == ("dnum-ent", "wifi", "marc", "0540001A")
    # Thursday 30 April 16:00 -> Monday 4 May 10:00 (the internal note at 09:30 is no response)
    assert a.first_response_by == "marc"
    assert (a.first_response_seconds / H, a.first_response_working_seconds / H) == (90.0, 3.0)
    assert (a.resolution, a.resolution_seconds / H, a.resolution_working_seconds / H) == ("approved", 137.0, 17.0)
    assert (a.rating, a.has_feedback, a.reopen_count) == (4, True, 0)
    assert spans(a) == [("FREE", 89.0, 2.0), ("IN_PROGRESS", 1.5, 1.5), ("WAITING_FOR_INFO", 24.0, 7.5),
                        ("IN_PROGRESS", 3.5, 2.0), ("CLOSURE_REQUESTED", 19.0, 4.0), ("CLOSED", None, None)]


def test_ticket_b_over_ascension_and_whit_monday(facts):
    b = facts["B"]
    # the requester's own comment is no response; the closure request is
    assert (b.first_response_by, b.first_response_seconds / H, b.first_response_working_seconds / H) == (
        "mona", 48.0, 7.5)
    assert (b.resolution, b.resolution_seconds / H, b.resolution_working_seconds / H) == ("expired", 288.0, 52.0)
    assert b.assignee_id == "mona" and b.rating is None
    assert spans(b) == [("IN_PROGRESS", 48.0, 7.5), ("CLOSURE_REQUESTED", 240.0, 44.5), ("CLOSED", None, None)]


def test_ticket_c_escalated_reopened_and_approved_twice(facts):
    c = facts["C"]
    # an invitee's comment is no response; the central support's is
    assert (c.first_response_by, c.first_response_department_id) == ("sam", "support-ent")
    assert (c.first_response_seconds / H, c.first_response_working_seconds / H) == (23.5, 7.0)
    assert (c.escalation_seconds / H, c.escalation_working_seconds / H) == (4.0, 2.5)
    [e] = c.escalations
    assert (e.department_id, e.requested_by_id, e.support_department_id) == ("referents-ent:0540001A", "rene",
                                                                             "support-ent")
    assert e.requested_at == e.escalated_at == datetime.fromisoformat("2026-05-18T14:00:00+02:00")
    # the last resolution counts, with the last rating
    assert (c.resolution, c.resolution_seconds / H, c.resolution_working_seconds / H) == ("approved", 49.0, 16.0)
    assert (c.resolution_department_id, c.resolution_assignee_id) == ("support-ent", "sam")
    assert (c.reopen_count, c.rating, c.has_feedback) == (1, 5, True)
    assert spans(c) == [("FREE", 1.0, 1.0), ("IN_PROGRESS", 3.0, 1.5), ("FREE", 19.0, 4.0), ("IN_PROGRESS", 1.0, 1.0),
                        ("CLOSURE_REQUESTED", 2.0, 2.0), ("CLOSED", 21.0, 4.5), ("IN_PROGRESS", 1.0, 1.0),
                        ("CLOSURE_REQUESTED", 1.0, 1.0), ("CLOSED", None, None)]
    assert [p.department_id for p in c.periods[:3]] == ["referents-ent:0540001A"] * 2 + ["support-ent"]


def test_ticket_d_skips_an_event_type_it_does_not_know(facts):
    d = facts["D"]
    assert d.version == 4  # the unknown event counted as seen
    assert (d.resolution, d.resolution_seconds / H, d.resolution_working_seconds / H) == ("cancelled", 17.0, 0.5)
    assert d.first_response_at is None


def test_ticket_e_across_the_academic_year_boundary(facts):
    e = facts["E"]
    assert (e.resolution, e.resolution_seconds / H, e.resolution_working_seconds / H) == ("refused", 16.5, 1.5)
    assert e.first_response_at is None  # a refusal is not a response


def test_the_order_events_arrive_in_does_not_matter():
    for events in events_by_ticket().values():
        shuffled = list(events)
        random.Random(16).shuffle(shuffled)
        assert project("x", shuffled, CAL) == project("x", events, CAL)


def test_a_gap_folds_only_what_comes_before_it():
    events = events_by_ticket()["A"]
    partial = project("x", [e for e in events if e.stream_version != 3], CAL)
    assert partial.version == 2 and partial.status == "FREE" and partial.assignee_id is None
