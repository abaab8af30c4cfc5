"""The escalation service's pure decisions: forwarding or refusing a request, the
defaults of an establishment without settings, closure expiry delays, and what each
ticket event means for the timers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.escalation import rules

HOME, OTHER = "0540001A", "0880012B"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

CATALOGUE = rules.Catalogue(
    teams={
        f"referents-ent:{HOME}": rules.Team(f"referents-ent:{HOME}", "referents-ent", True, True, None,
                                            frozenset({"rene", "rachel"})),
        f"referents-clg:{OTHER}": rules.Team(f"referents-clg:{OTHER}", "referents-clg", True, False, 3,
                                             frozenset({"rita"})),
        "support-ent": rules.Team("support-ent", "support-ent", False, False, 10, frozenset({"sam"})),
        "dnum-ent": rules.Team("dnum-ent", "dnum-ent", False, False, None, frozenset({"marc"})),
    },
    category_expiry_days={"impression": 5, "messagerie": 14, "orphan": None},
)


def ticket(**overrides: Any) -> dict[str, Any]:
    return {"id": "t-1", "number": 53350, "subject": "Messagerie", "status": "FREE", "category_id": "messagerie",
            "department_id": f"referents-ent:{HOME}", "establishment": HOME,
            "requester": {"id": "alice", "name": "Alice", "email": "alice@univ.example"}, "assignee": None,
            "escalation": "none", "version": 2, **overrides}


def message(event_type: str, version: int = 3, actor: str = "rene", kind: str = "user",
            data: dict[str, Any] | None = None, **summary: Any) -> dict[str, Any]:
    return {"event_id": f"e-{version}", "event_type": event_type, "stream_version": version,
            "occurred_at": T0.isoformat(), "actor": {"id": actor, "name": actor, "kind": kind},
            "data": data or {}, "ticket": ticket(version=version, **summary)}


# --- settings and decisions -----------------------------------------------------------------


def test_without_settings_escalation_follows_the_referents_department():
    assert rules.settings_for(HOME, None, CATALOGUE, team_id=f"referents-ent:{HOME}").enabled
    assert not rules.settings_for(OTHER, None, CATALOGUE, team_id=f"referents-clg:{OTHER}").enabled
    default = rules.settings_for(HOME, None, CATALOGUE)
    assert default.view() == {"establishment": HOME, "enabled": True, "support_department_id": "support-ent",
                              "first_response_hours": None, "configured": False}
    assert rules.settings_for("9999999Z", None, CATALOGUE, "helpdesk").view()["enabled"] is False
    assert rules.settings_for(HOME, None, CATALOGUE, "helpdesk").support_department_id == "helpdesk"


def test_stored_settings_win_over_the_defaults():
    row = {"enabled": True, "support_department_id": "dnum-ent", "first_response_hours": 4}
    settings = rules.settings_for(OTHER, row, CATALOGUE, team_id=f"referents-clg:{OTHER}")
    assert (settings.enabled, settings.support_department_id, settings.first_response_hours, settings.configured) \
        == (True, "dnum-ent", 4, True)


def test_a_referents_request_is_forwarded_to_the_central_support():
    settings = rules.settings_for(HOME, None, CATALOGUE, team_id=f"referents-ent:{HOME}")
    assert rules.decide(ticket(escalation="requested"), settings, CATALOGUE) == rules.Decision(True, "support-ent")


@pytest.mark.parametrize("summary, settings, catalogue, says", [
    pytest.param({"department_id": "dnum-ent"}, None, CATALOGUE, "Seules les demandes", id="global-department"),
    pytest.param({"department_id": None}, None, CATALOGUE, "Seules les demandes", id="no-department"),
    pytest.param({}, rules.Settings(HOME, False, "support-ent"), CATALOGUE, "n'est pas activée pour l'établissement "
                 + HOME, id="disabled"),
    pytest.param({}, None, CATALOGUE, "n'est pas activée", id="no-settings"),
    pytest.param({}, rules.Settings(HOME, True, "nowhere"), CATALOGUE, "« nowhere » n'est pas configuré",
                 id="unknown-support"),
    pytest.param({}, rules.Settings(HOME, True, f"referents-clg:{OTHER}"), CATALOGUE, "n'est pas configuré",
                 id="referents-as-support"),
    pytest.param({}, rules.Settings(HOME, True, "support-ent"), rules.Catalogue(), "pas encore connue",
                 id="catalogue-unknown"),
])
def test_refusals_say_why_in_french_then_english(summary, settings, catalogue, says):
    decision = rules.decide(ticket(escalation="requested", **summary), settings, catalogue)
    assert not decision.forward and decision.support_department_id is None
    assert says in decision.reason and " / " in decision.reason


# --- closure expiry ------------------------------------------------------------------------------


@pytest.mark.parametrize("category, team, days", [
    ("impression", f"referents-ent:{HOME}", 5),     # the category's (resolved by routing)
    ("messagerie", "support-ent", 14),               # the category's, even once escalated
    ("orphan", "support-ent", 10),                   # none on the category: the team's department's
    ("unknown", "dnum-ent", 14),                     # neither: 14 days
    (None, None, 14),
])
def test_closure_expiry_days(category, team, days):
    assert rules.closure_expiry_days(CATALOGUE, category, team) == days


# --- timers ------------------------------------------------------------------------------------


def test_a_closure_request_sets_the_expiry_timer():
    planned = rules.plan(message("ClosureRequested", 5, status="CLOSURE_REQUESTED", category_id="impression",
                                 assignee={"id": "rene", "name": "R", "email": None}), CATALOGUE)
    assert planned.timer == rules.NewTimer(rules.EXPIRE_CLOSURE, "e-5", "t-1", 5, T0, T0 + timedelta(days=5))
    assert "left_closure_requested" not in planned.marks
    assert planned.marks["left_postponed"] == 5 and planned.marks["responded"] == 5


def test_a_postponement_with_a_date_sets_the_recall_and_one_without_does_not():
    until = (T0 + timedelta(days=3)).isoformat()
    planned = rules.plan(message("TicketPostponed", 6, data={"until": until, "reason": "x"}, status="POSTPONED"),
                         CATALOGUE)
    assert (planned.timer.kind, planned.timer.due_at) == (rules.RESUME, T0 + timedelta(days=3))
    assert "left_postponed" not in planned.marks
    assert rules.plan(message("TicketPostponed", 6, data={"until": None, "reason": "x"}, status="POSTPONED"),
                      CATALOGUE).timer is None


def test_routing_to_an_establishments_referents_starts_the_first_response_wait():
    planned = rules.plan(message("TicketRouted", 2, actor="system:routing", kind="system"), CATALOGUE)
    assert planned.timer == rules.NewTimer(rules.FIRST_RESPONSE, "e-2", "t-1", 2, T0, None,
                                           f"referents-ent:{HOME}", HOME)
    assert planned.marks["responded"] == 2  # ends any earlier wait, not this one (same version)
    for summary in ({"department_id": "dnum-ent"}, {"escalation": "returned"}, {"status": "CLOSED"}):
        assert rules.plan(message("TicketRouted", 2, actor="system:routing", kind="system", **summary),
                          CATALOGUE).timer is None


@pytest.mark.parametrize("event_type, actor, kind, data, summary, over", [
    pytest.param("TicketAssigned", "rene", "user", {"taken": True}, {"status": "IN_PROGRESS"}, True, id="taken"),
    pytest.param("TicketAssigned", "system:routing", "system", {"taken": False}, {"status": "IN_PROGRESS"}, False,
                 id="assigned-by-routing"),
    pytest.param("TicketAssigned", "root", "user", {"taken": False}, {"status": "IN_PROGRESS"}, True,
                 id="assigned-by-an-admin"),
    pytest.param("CommentAdded", "rachel", "user", {"visibility": "public"}, {}, True, id="referent-comment"),
    pytest.param("CommentAdded", "root", "user", {"visibility": "internal"}, {}, True, id="internal-comment"),
    pytest.param("CommentAdded", "alice", "user", {"visibility": "public"}, {}, False, id="requester-comment"),
    pytest.param("CommentAdded", "ines", "user", {"visibility": "public"}, {}, False, id="invitee-comment"),
    pytest.param("WatchStarted", "alice", "user", {}, {}, False, id="requester-watches"),
    pytest.param("EscalationRequested", "rene", "user", {}, {"escalation": "requested"}, True, id="escalation"),
    pytest.param("TicketCancelled", "alice", "user", {}, {"status": "CANCELLED"}, True, id="cancelled"),
    pytest.param("TicketMoved", "system:x", "system", {}, {}, True, id="moved"),
])
def test_what_ends_the_wait_for_a_first_response(event_type, actor, kind, data, summary, over):
    planned = rules.plan(message(event_type, 4, actor=actor, kind=kind, data=data, **summary), CATALOGUE)
    assert ("responded" in planned.marks) is over


def test_leaving_a_status_ends_its_wait_and_the_return_is_marked():
    planned = rules.plan(message("TicketReturnedToReferent", 9, actor="sam", status="IN_PROGRESS",
                                 escalation="returned"), CATALOGUE)
    assert planned.marks == {"left_closure_requested": 9, "left_postponed": 9, "responded": 9, "returned": 9}
    assert planned.timer is None


def test_reasons_are_french_then_english():
    assert rules.auto_escalation_reason(4).startswith("Aucune prise en charge")
    assert "dans le délai de 4 heures ouvrées" in rules.auto_escalation_reason(4)
    assert "within 4 working hours" in rules.auto_escalation_reason(4)
    assert " / The request can no longer" in rules.no_longer_open_reason("closed")
