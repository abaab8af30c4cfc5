"""What one ticket's events say for the statistics (pure: no Nameko, psycopg or HTTP).

``project`` folds a ticket's events, oldest first, into its facts: when it was created
and routed, its first response by a manager, each period in each status, its
escalations, reopenings, resolution, rating and feedback, each with the department,
category and assignee as they were at the time. The ticket's state between events is
the tickets service's own fold (``shared.ticket_state.TicketState.apply``), so statuses
here are exactly the ones the ticket had.

Facts are a function of the events alone, not of the order they arrived in: the
service keeps each ticket's events and folds the contiguous run from version 1 again
whenever one arrives, and the rebuild folds the same events, so both give the same
facts.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.calendar import WorkingCalendar
from shared.contract import FINAL
from shared.events import EVENT_SCHEMAS, load_data
from shared.ticket_state import TicketState

# First response by a manager (issue #16): their first public comment, their first
# request for information, or the closure request.
RESPONSES = frozenset({"InformationRequested", "ClosureRequested"})
RESOLUTIONS = ("approved", "expired", "closed_by_owner", "cancelled", "refused")


@dataclass(frozen=True)
class Event:
    """One ticket event as the service keeps it: data as stored (JSON), read back by
    its schema when folded."""

    stream_version: int
    event_type: str
    schema_version: int
    occurred_at: datetime
    actor_id: str
    actor_kind: str
    data: dict[str, Any]
    actor_name: str | None = None


@dataclass
class Period:
    """A stretch of time in one status with the same department, category and assignee;
    ``ended_at`` is None while it lasts."""

    seq: int
    status: str
    started_at: datetime
    department_id: str | None
    category_id: str | None
    assignee_id: str | None
    ended_at: datetime | None = None
    seconds: float | None = None
    working_seconds: float | None = None


@dataclass
class Escalation:
    """A request to the central support (``requested_at``) or an escalation by the
    service itself (no request), and what became of it."""

    seq: int
    department_id: str | None  # the referents' department
    category_id: str | None
    requested_by_id: str | None
    requested_at: datetime | None = None
    escalated_at: datetime | None = None
    support_department_id: str | None = None
    refused_at: datetime | None = None
    returned_at: datetime | None = None


@dataclass
class Facts:
    """A ticket's facts. Dimensions of creation: the first department it was routed to,
    the category it was filed in, its first assignee; of the first response: the
    responder and the department then; of the resolution: the department, category and
    assignee when it reached its (last) final status."""

    ticket_id: str
    version: int = 0
    number: int | None = None
    subject: str = ""
    establishment: str | None = None
    requester_id: str | None = None
    created_at: datetime | None = None
    category_id: str | None = None
    department_id: str | None = None
    assignee_id: str | None = None
    routed_at: datetime | None = None
    status: str | None = None
    first_response_at: datetime | None = None
    first_response_by: str | None = None
    first_response_department_id: str | None = None
    first_response_category_id: str | None = None
    first_response_seconds: float | None = None
    first_response_working_seconds: float | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None
    resolution_department_id: str | None = None
    resolution_category_id: str | None = None
    resolution_assignee_id: str | None = None
    resolution_seconds: float | None = None
    resolution_working_seconds: float | None = None
    reopen_count: int = 0
    escalated_at: datetime | None = None
    escalation_seconds: float | None = None
    escalation_working_seconds: float | None = None
    approved_at: datetime | None = None
    rating: int | None = None
    has_feedback: bool = False
    periods: list[Period] = field(default_factory=list)
    escalations: list[Escalation] = field(default_factory=list)


def contiguous(events: Iterable[Event]) -> list[Event]:
    """The events from version 1 on without a gap, in order: a ticket whose version 3
    arrived before its version 2 is folded up to version 1 until version 2 comes."""
    ordered = sorted(events, key=lambda e: e.stream_version)
    run: list[Event] = []
    for event in ordered:
        if event.stream_version != len(run) + 1:
            break
        run.append(event)
    return run


def _dims(t: TicketState) -> tuple[str | None, str | None, str | None, str | None]:
    return t.status, t.department_id, t.category_id, (t.assignee or {}).get("id")


def project(ticket_id: str, events: Iterable[Event], calendar: WorkingCalendar) -> Facts:
    """The facts of a ticket from its events (any order; only the contiguous run from
    version 1 counts). Event types this service does not know are skipped."""
    facts = Facts(ticket_id)
    state = TicketState()
    open_escalation: Escalation | None = None
    for event in contiguous(events):
        facts.version = event.stream_version
        if event.event_type not in EVENT_SCHEMAS or not hasattr(state, f"_on_{event.event_type}"):
            continue  # a newer event type: nothing to count (yet)
        data = load_data(event.event_type, event.schema_version, event.data)
        before = copy.deepcopy(state) if event.event_type == "CommentAdded" else None
        status_before, department_before, category_before, assignee_before = _dims(state)
        state.apply(event.event_type, data, occurred_at=event.occurred_at,
                    actor={"id": event.actor_id, "name": event.actor_name, "kind": event.actor_kind})
        at, kind = event.occurred_at, event.event_type

        if kind == "TicketSubmitted":
            facts.number, facts.establishment = state.number, state.establishment
            facts.requester_id = (state.requester or {}).get("id")
            facts.created_at, facts.category_id = at, state.category_id
        elif kind == "TicketRouted" and facts.routed_at is None:
            facts.routed_at, facts.department_id = at, state.department_id
        elif kind == "TicketAssigned" and facts.assignee_id is None:
            facts.assignee_id = (state.assignee or {}).get("id")
        elif kind == "TicketReopened":
            facts.reopen_count += 1
            facts.resolved_at = facts.resolution = None
        elif kind == "ClosureApproved":
            facts.approved_at, facts.rating = at, data.get("rating")
            facts.has_feedback = bool((data.get("feedback") or "").strip())
        elif kind == "EscalationRequested":
            open_escalation = Escalation(len(facts.escalations) + 1, department_before, category_before,
                                         event.actor_id, requested_at=at)
            facts.escalations.append(open_escalation)
        elif kind == "EscalationRefused" and open_escalation is not None:
            open_escalation.refused_at, open_escalation = at, None
        elif kind == "TicketEscalated":
            if open_escalation is None:  # escalated by the service itself (a first-response deadline)
                open_escalation = Escalation(len(facts.escalations) + 1, department_before, category_before, None)
                facts.escalations.append(open_escalation)
            open_escalation.escalated_at = at
            facts.escalated_at = facts.escalated_at or at
            open_escalation.support_department_id = state.department_id
        elif kind == "TicketReturnedToReferent":
            escalated = [e for e in facts.escalations if e.escalated_at and e.returned_at is None]
            if escalated:
                escalated[-1].returned_at = at
            open_escalation = None

        if facts.first_response_at is None and _is_response(kind, data, event, before):
            facts.first_response_at, facts.first_response_by = at, event.actor_id
            facts.first_response_department_id, facts.first_response_category_id = department_before, category_before

        if state.status in FINAL and status_before not in FINAL:
            facts.resolved_at = at
            facts.resolution = state.resolution or state.status.lower()
            facts.resolution_department_id, facts.resolution_category_id = department_before, category_before
            facts.resolution_assignee_id = assignee_before

        _follow_periods(facts, state, at)

    facts.subject, facts.status = state.subject, state.status
    _durations(facts, calendar)
    return facts


def _is_response(kind: str, data: dict[str, Any], event: Event, before: TicketState | None) -> bool:
    """A manager responded: a request for information or for closure, or a public
    comment by a person who is neither the requester nor an invitee (so a manager or an
    admin, the only others who may comment)."""
    if kind in RESPONSES:
        return True
    if kind != "CommentAdded" or data.get("visibility") != "public" or event.actor_kind != "user":
        return False
    assert before is not None
    return event.actor_id != (before.requester or {}).get("id") and event.actor_id not in before.invitees


def _follow_periods(facts: Facts, state: TicketState, at: datetime) -> None:
    status, department_id, category_id, assignee_id = _dims(state)
    current = facts.periods[-1] if facts.periods else None
    if current is not None and (current.status, current.department_id, current.category_id,
                                current.assignee_id) == (status, department_id, category_id, assignee_id):
        return
    if current is not None and current.started_at == at:
        # Several events at one instant (a submission and its routing, an escalation and
        # the release it causes): the period they pass through lasted nothing, so it is
        # the next one.
        facts.periods.pop()
        current = facts.periods[-1] if facts.periods else None
        if current is not None and (current.status, current.department_id, current.category_id,
                                    current.assignee_id) == (status, department_id, category_id, assignee_id):
            current.ended_at = None
            return
    if current is not None:
        current.ended_at = at
    if status is not None:
        facts.periods.append(Period(len(facts.periods) + 1, status, at, department_id, category_id, assignee_id))


def _durations(facts: Facts, calendar: WorkingCalendar) -> None:
    """Wall-clock and working seconds of everything that has ended."""
    if facts.created_at and facts.first_response_at:
        facts.first_response_seconds = (facts.first_response_at - facts.created_at).total_seconds()
        facts.first_response_working_seconds = calendar.working_seconds(facts.created_at, facts.first_response_at)
    if facts.created_at and facts.resolved_at:
        facts.resolution_seconds = (facts.resolved_at - facts.created_at).total_seconds()
        facts.resolution_working_seconds = calendar.working_seconds(facts.created_at, facts.resolved_at)
    if facts.created_at and facts.escalated_at:
        facts.escalation_seconds = (facts.escalated_at - facts.created_at).total_seconds()
        facts.escalation_working_seconds = calendar.working_seconds(facts.created_at, facts.escalated_at)
    for period in facts.periods:
        if period.ended_at is not None:
            period.seconds = (period.ended_at - period.started_at).total_seconds()
            period.working_seconds = calendar.working_seconds(period.started_at, period.ended_at)
