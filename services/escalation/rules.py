"""The escalation service's decisions (pure: no Nameko, psycopg or HTTP).

- ``decide``: forward a referent's request to the central support, or refuse it and say
  why (``WORKFLOW.md``: escalate, "Transmettre la demande au support").
- ``plan``: what one ticket event means for the service's timers: which one it sets
  (closure expiry, recall of a postponed ticket, first-response deadline) and which waits
  it ends. Waits are tracked as stream versions, so the answer does not depend on the
  order events arrive in.
- ``settings_for``: an establishment's settings, or the defaults when it has none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

DEFAULT_SUPPORT_DEPARTMENT = "support-ent"
DEFAULT_CLOSURE_EXPIRY_DAYS = 14

OPEN = frozenset({"FREE", "IN_PROGRESS", "WAITING_FOR_INFO", "POSTPONED"})
FINAL = frozenset({"CLOSED", "CANCELLED", "REFUSED"})
CLOSURE_REQUESTED = "CLOSURE_REQUESTED"
POSTPONED = "POSTPONED"

EXPIRE_CLOSURE = "expire_closure"
RESUME = "resume"
FIRST_RESPONSE = "first_response"

# Events only a manager (or an admin) can cause: a person causing one has responded.
MANAGER_EVENTS = frozenset({
    "TicketAssigned", "TicketReleased", "InformationRequested", "TicketPostponed", "ClosureRequested",
    "TicketRefused", "TicketMoved", "EscalationRequested",
})
# Events that change the ticket's team, or hand it on: a wait for the old team's first
# response ends with them (a new routing starts a new one).
TEAM_CHANGES = frozenset({"TicketRouted", "TicketMoved", "TicketEscalated", "TicketReturnedToReferent"})


# --- routing's catalogue, as copied ------------------------------------------------------


@dataclass(frozen=True)
class Team:
    """A team of routing's catalogue: a global department, or one establishment's referents."""

    id: str
    department_id: str
    per_establishment: bool = False
    escalation_enabled: bool = False
    closure_expiry_days: int | None = None
    managers: frozenset[str] = frozenset()

    @property
    def establishment(self) -> str | None:
        return self.id.partition(":")[2] or None if self.per_establishment else None


@dataclass(frozen=True)
class Catalogue:
    """Teams by id and each category's effective closure expiry delay."""

    teams: dict[str, Team] = field(default_factory=dict)
    category_expiry_days: dict[str, int | None] = field(default_factory=dict)

    @property
    def known(self) -> bool:
        """False until routing's first snapshot arrived."""
        return bool(self.teams)

    def is_referent_team(self, team_id: str | None) -> bool:
        """A team of a per-establishment department (``referents-ent:0540001A``)."""
        if not team_id:
            return False
        team = self.teams.get(team_id)
        return team.per_establishment if team else ":" in team_id

    def referent_establishments(self, user_id: str) -> set[str]:
        """The establishments whose referents ``user_id`` is one of."""
        return {t.establishment for t in self.teams.values()
                if t.per_establishment and t.establishment and user_id in t.managers}

    def managed_teams(self, user_id: str) -> set[str]:
        return {t.id for t in self.teams.values() if user_id in t.managers}


def closure_expiry_days(catalogue: Catalogue, category_id: str | None, team_id: str | None) -> int:
    """The category's delay (routing resolved it up the tree and to its department), else
    the ticket's team's department's, else 14 days."""
    days = catalogue.category_expiry_days.get(category_id or "")
    if days:
        return days
    team = catalogue.teams.get(team_id or "")
    return (team.closure_expiry_days if team else None) or DEFAULT_CLOSURE_EXPIRY_DAYS


# --- establishments' settings ----------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Whether an establishment's referents may escalate, to whom, and the first-response
    deadline; ``configured`` is False for the defaults."""

    establishment: str
    enabled: bool
    support_department_id: str
    first_response_hours: int | None = None
    configured: bool = False

    def view(self) -> dict[str, Any]:
        return {
            "establishment": self.establishment,
            "enabled": self.enabled,
            "support_department_id": self.support_department_id,
            "first_response_hours": self.first_response_hours,
            "configured": self.configured,
        }


def settings_for(
    establishment: str,
    row: dict[str, Any] | None,
    catalogue: Catalogue,
    default_support: str = DEFAULT_SUPPORT_DEPARTMENT,
    team_id: str | None = None,
) -> Settings:
    """The stored settings, else the defaults: enabled when the referents' department (the
    ticket's team's, or any per-establishment one with referents in the establishment)
    has ``escalation_enabled`` in routing's configuration; the default central support;
    no first-response deadline."""
    if row is not None:
        return Settings(establishment, row["enabled"], row["support_department_id"], row["first_response_hours"], True)
    team = catalogue.teams.get(team_id or "")
    if team is not None:
        enabled = team.per_establishment and team.escalation_enabled
    else:
        enabled = any(t.escalation_enabled for t in catalogue.teams.values()
                      if t.per_establishment and t.establishment == establishment)
    return Settings(establishment, enabled, default_support)


# --- a referent's request ------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """Forward to ``support_department_id``, or refuse with ``reason`` (French, then English)."""

    forward: bool
    support_department_id: str | None = None
    reason: str | None = None


def refusal(fr: str, en: str) -> Decision:
    return Decision(False, None, f"{fr} / {en}")


def decide(ticket: dict[str, Any], settings: Settings | None, catalogue: Catalogue) -> Decision:
    """Whether the escalation requested on ``ticket`` (the summary after the request) goes
    to the central support; ``settings`` are those of the team's establishment."""
    team_id = ticket.get("department_id")
    if not catalogue.is_referent_team(team_id):
        return refusal(
            "Seules les demandes traitées par les référents ENT d'un établissement peuvent être transmises au support.",
            "Only requests handled by an establishment's ENT referents can be forwarded to the central support.",
        )
    uai = str(team_id).partition(":")[2]  # a referent team (checked above): "<id>:<UAI>"
    if not catalogue.known:
        return refusal(
            "La configuration des services n'est pas encore connue : réessayez dans un instant.",
            "The departments' configuration is not known yet: try again in a moment.",
        )
    if settings is None or not settings.enabled:
        return refusal(
            f"La transmission au support n'est pas activée pour l'établissement {uai}.",
            f"Escalation to the central support is not enabled for establishment {uai}.",
        )
    support = settings.support_department_id
    team = catalogue.teams.get(support)
    if team is None or team.per_establishment or support == team_id:
        return refusal(
            f"Le service de support « {support} » n'est pas configuré.",
            f"The central support department {support!r} is not configured.",
        )
    return Decision(True, support, None)


def escalable_teams(catalogue: Catalogue, rows: dict[str, dict[str, Any]], default_support: str) -> list[str]:
    """The referent teams whose escalation ``decide`` would forward now (``rows``: the
    stored settings by establishment), for the tickets service to offer ``escalate``
    only there."""
    teams = []
    for team_id in sorted(catalogue.teams):
        if not catalogue.is_referent_team(team_id):
            continue
        uai = str(team_id).partition(":")[2]  # a referent team (checked above): "<id>:<UAI>"
        settings = settings_for(uai, rows.get(uai), catalogue, default_support, team_id)
        if decide({"department_id": team_id}, settings, catalogue).forward:
            teams.append(team_id)
    return teams


# --- timers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewTimer:
    kind: str
    event_id: str
    ticket_id: str
    stream_version: int
    started_at: datetime
    due_at: datetime | None = None
    team: str | None = None
    establishment: str | None = None


@dataclass(frozen=True)
class Plan:
    """What one event means: the waits it ends (mark -> version) and the timer it sets."""

    marks: dict[str, int]
    timer: NewTimer | None = None


def plan(message: dict[str, Any], catalogue: Catalogue) -> Plan:
    """The timer ``message`` sets and the waits it ends (``escalation.tickets`` marks)."""
    event_type, ticket = message["event_type"], message["ticket"]
    version = message["stream_version"]
    at = datetime.fromisoformat(message["occurred_at"])
    data = message.get("data") or {}
    marks: dict[str, int] = {}
    if ticket["status"] != CLOSURE_REQUESTED:
        marks["left_closure_requested"] = version
    if ticket["status"] != POSTPONED:
        marks["left_postponed"] = version
    if _first_response_over(message, catalogue):
        marks["responded"] = version
    if event_type == "TicketReturnedToReferent":
        marks["returned"] = version

    timer = None
    common = {"event_id": message["event_id"], "ticket_id": ticket["id"], "stream_version": version, "started_at": at}
    if event_type == "ClosureRequested":
        days = closure_expiry_days(catalogue, ticket.get("category_id"), ticket.get("department_id"))
        timer = NewTimer(EXPIRE_CLOSURE, due_at=at + timedelta(days=days), **common)
    elif event_type == "TicketPostponed" and data.get("until"):
        timer = NewTimer(RESUME, due_at=datetime.fromisoformat(data["until"]), **common)
    elif (
        event_type == "TicketRouted"
        and catalogue.is_referent_team(ticket.get("department_id"))
        and ticket["status"] in OPEN
        and ticket.get("escalation") in ("none", None)
    ):
        team = ticket["department_id"]
        timer = NewTimer(FIRST_RESPONSE, team=team, establishment=team.partition(":")[2], **common)
    return Plan(marks, timer)


def _first_response_over(message: dict[str, Any], catalogue: Catalogue) -> bool:
    """The ticket's team has answered, or the ticket no longer waits for it."""
    event_type, ticket, actor = message["event_type"], message["ticket"], message.get("actor") or {}
    if event_type in TEAM_CHANGES or ticket["status"] in FINAL or ticket["status"] == CLOSURE_REQUESTED:
        return True
    if ticket.get("escalation") in ("requested", "escalated"):
        return True
    if actor.get("kind") != "user" or actor.get("id") == (ticket.get("requester") or {}).get("id"):
        return False  # routing's automatic assignment is not a response, nor the requester's comment
    if event_type in MANAGER_EVENTS:
        return True
    if event_type == "CommentAdded" and (message.get("data") or {}).get("visibility") == "internal":
        return True
    team = catalogue.teams.get(ticket.get("department_id") or "")
    return team is not None and actor.get("id") in team.managers


def auto_escalation_reason(hours: int) -> str:
    """The reason an automatic escalation gives: the deadline counts working hours only."""
    return (
        f"Aucune prise en charge par les référents dans le délai de {hours} heures ouvrées :"
        " transmission automatique au support."
        f" / Nobody handled the request within {hours} working hours: forwarded to the central support automatically."
    )


def no_longer_open_reason(detail: str) -> str:
    return (f"La demande ne peut plus être transmise au support ({detail})."
            f" / The request can no longer be forwarded to the central support ({detail}).")
