"""Who may see and who is told, under random actions and changes of team (issue #12).

A hypothesis state machine drives one ticket through the tickets service layer
(``TicketCommands``, the real database) with random actions by random people, while
managers join and leave departments (the copies of routing's teams in tickets and in the
notifier change, and the tickets service rechecks access as it does on a new catalogue).
Every event is then handled by the notifier's service layer (``handle_ticket_event``,
the real database: feed entries and queued emails). After each step:

- no feed entry and no email of an event goes to someone who could not see the ticket at
  that event (the oracle: the ticket folded up to the event, and the machine's own record
  of the teams at that moment);
- the assignee, when set, can see the ticket;
- internal content (internal comments, the escalation's reason) never reaches a
  non-manager.
"""

from __future__ import annotations

from email import message_from_bytes, policy
from typing import Any
from uuid import uuid4

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from services.notifier.mail import MailRenderer
from services.notifier.notifications import handle_ticket_event, parse_envelope
from services.tickets import domain, projections
from services.tickets.commands import Conflict, TicketCommands, TicketNotFound, UnknownUser

PEOPLE = {
    "alice": domain.Actor("alice", "Alice", "alice@univ.example", establishment="0540001A"),
    "ines": domain.Actor("ines", "Ines", "ines@univ.example"),
    "bob": domain.Actor("bob", "Bob", "bob@univ.example"),
    "marc": domain.Actor("marc", "Marc", "marc@univ.example"),
    "mona": domain.Actor("mona", "Mona", "mona@univ.example"),
    "sam": domain.Actor("sam", "Sam", "sam@univ.example"),
}
SYSTEM = domain.Actor.system("escalation")
TEAMS = ("dnum-ent", "support", "scolarite")
SECRET_NOTE = "SECRET-INTERNE"
SECRET_REASON = "MOTIF-SECRET"

ACTIONS: list[tuple[str, dict[str, Any]]] = [
    ("comment", {"body": "Bonjour", "visibility": "public"}),
    ("comment", {"body": SECRET_NOTE, "visibility": "internal"}),
    ("take", {}), ("take_over", {}), ("assign", {"assignee": "marc"}), ("assign", {"assignee": "sam"}),
    ("release", {}), ("request_information", {"question": "Quel navigateur ?"}),
    ("postpone", {"reason": "Congés"}), ("resume", {}), ("request_closure", {"resolution": "Réglé"}),
    ("approve_closure", {}), ("refuse_closure", {"justification": "Toujours en panne"}),
    ("close", {}), ("cancel", {}), ("refuse", {"reason": "Hors périmètre"}), ("reopen", {}),
    ("move", {"category_id": "inscriptions"}), ("move", {"category_id": "ent-connexion"}),
    ("invite", {"user": "ines"}), ("uninvite", {"user_id": "ines"}), ("invite", {"user": "bob"}),
    ("watch", {}), ("unwatch", {}), ("escalate", {"reason": SECRET_REASON}),
    ("return_to_referent", {"comment": "Retour"}),
]
CATEGORY_TEAM = {"ent-connexion": "dnum-ent", "inscriptions": "scolarite"}


class WhoSeesWhoHears(RuleBasedStateMachine):
    def __init__(self, pool: Any) -> None:
        super().__init__()
        self.pool = pool
        self.commands = TicketCommands(pool)
        self.renderer = MailRenderer("https://guichet.test")
        self.teams: dict[str, set[str]] = {"dnum-ent": {"marc", "mona"}, "support": {"sam"}, "scolarite": set()}
        with pool.connection() as conn:
            conn.execute("TRUNCATE tickets.events, tickets.outbox, tickets.ticket_view, tickets.idempotency_keys,"
                         " tickets.department_managers, tickets.departments, tickets.categories, tickets.users,"
                         " notifier.processed_events, notifier.ticket_facts, notifier.feed_entries,"
                         " notifier.emails, notifier.team_managers, notifier.people, notifier.preferences CASCADE")
            for login, person in PEOPLE.items():
                conn.execute("INSERT INTO tickets.users (id, name, email) VALUES (%s, %s, %s)",
                             (login, person.name, person.email))
        self._save_teams()
        # the membership of each team at each event, for the oracle
        self.teams_at: dict[str, dict[str, frozenset[str]]] = {}
        self.handled = 0
        ticket = self.commands.execute("submit", PEOPLE["alice"], None, {
            "category_id": "ent-connexion", "subject": "Connexion impossible", "description": "Écran blanc."})
        self.ticket_id = ticket["id"]
        self.commands.execute("route", domain.Actor.system("routing"), self.ticket_id, {"department_id": "dnum-ent"})
        self._notify()

    def _save_teams(self) -> None:
        """The tickets service's copy of the teams changes now; the notifier's only after
        it handled the events of the change (its copy lags, as a real one may)."""
        with self.pool.connection() as conn:
            conn.execute("DELETE FROM tickets.department_managers")
            for team, members in self.teams.items():
                for login in members:
                    person = PEOPLE[login]
                    conn.execute("INSERT INTO tickets.department_managers (department_id, user_id, name, email)"
                                 " VALUES (%s, %s, %s, %s)", (team, login, person.name, person.email))

    def _save_notifier_teams(self) -> None:
        with self.pool.connection() as conn:
            conn.execute("DELETE FROM notifier.team_managers")
            conn.execute("INSERT INTO notifier.teams (id, department_id, label_fr) SELECT t, t, t FROM unnest(%s::text[]) t"
                         " ON CONFLICT DO NOTHING", (list(TEAMS),))
            for team, members in self.teams.items():
                for login in members:
                    person = PEOPLE[login]
                    conn.execute("INSERT INTO notifier.team_managers (team_id, user_id, name, email)"
                                 " VALUES (%s, %s, %s, %s)", (team, login, person.name, person.email))

    def _notify(self) -> None:
        """Hand every new event to the notifier's service layer, noting the teams then."""
        with self.pool.connection() as conn:
            rows = conn.execute("SELECT global_position, payload FROM tickets.outbox WHERE global_position > %s"
                                " ORDER BY global_position", (self.handled,)).fetchall()
            for row in rows:
                message = {**row["payload"], "global_position": row["global_position"]}
                self.teams_at[message["event_id"]] = {t: frozenset(m) for t, m in self.teams.items()}
                handle_ticket_event(conn, parse_envelope(message), self.renderer)
                self.handled = row["global_position"]
        self._save_notifier_teams()

    def _do(self, action: str, login: str, args: dict[str, Any]) -> None:
        actor = SYSTEM if login == "system" else PEOPLE[login]
        if action == "route":
            actor = domain.Actor.system("routing")
        args = dict(args)
        if action == "comment":
            args["comment_id"] = str(uuid4())
        try:
            self.commands.execute(action, actor, self.ticket_id, args)
        except (domain.DomainError, TicketNotFound, UnknownUser, Conflict):
            pass  # refused: nothing appended (checked elsewhere)
        self._notify()

    @rule(action=st.sampled_from(ACTIONS), login=st.sampled_from(sorted(PEOPLE)))
    def act(self, action: tuple[str, dict[str, Any]], login: str) -> None:
        self._do(action[0], login, action[1])

    @rule(action=st.sampled_from(["take", "watch", "comment"]), login=st.sampled_from(["marc", "mona", "sam"]))
    def a_manager_acts(self, action: str, login: str) -> None:
        self._do(action, login, {"body": "Je regarde", "visibility": "public"} if action == "comment" else {})

    @rule(team=st.sampled_from(["support"]))
    def escalation_forwards(self, team: str) -> None:
        self._do("escalate_to", "system", {"department_id": team})

    @rule()
    def routing_follows_the_category(self) -> None:
        with self.pool.connection() as conn:
            ticket = projections.load_view(conn, self.ticket_id)
        team = CATEGORY_TEAM[ticket.category_id]
        if ticket.escalation != "escalated":
            self._do("route", "system", {"department_id": team})

    @rule(team=st.sampled_from(TEAMS), login=st.sampled_from(["marc", "mona", "sam", "bob"]), joins=st.booleans())
    def change_of_team(self, team: str, login: str, joins: bool) -> None:
        (self.teams[team].add if joins else self.teams[team].discard)(login)
        self._save_teams()
        self.commands.recheck_access()  # what the tickets service does on a new catalogue
        self._notify()

    @rule()
    def the_assignee_leaves_their_teams(self) -> None:
        """The case of the audit: the person handling the ticket leaves the department."""
        with self.pool.connection() as conn:
            ticket = projections.load_view(conn, self.ticket_id)
        if ticket.assignee is not None:
            for members in self.teams.values():
                members.discard(ticket.assignee["id"])
            self._save_teams()
            self.commands.recheck_access()
            self._notify()

    # -- the invariants

    def _ticket_at(self, conn: Any, version: int) -> domain.Ticket:
        events = self.commands.store.load(conn, projections.stream_id(self.ticket_id))
        return projections.fold([e for e in events if e.stream_version <= version])

    @invariant()
    def nobody_hears_of_a_ticket_they_could_not_see_and_internal_stays_internal(self) -> None:
        with self.pool.connection() as conn:
            told = conn.execute(
                "SELECT f.event_id::text AS event_id, f.user_id, f.summary_fr, e.stream_version, e.event_type,"
                " m.message FROM notifier.feed_entries f"
                " JOIN tickets.events e ON e.event_id = f.event_id"
                " LEFT JOIN notifier.emails m ON m.event_id = f.event_id AND m.recipient_id = f.user_id"
            ).fetchall()
            for entry in told:
                ticket = self._ticket_at(conn, entry["stream_version"])
                teams = self.teams_at[entry["event_id"]]
                managers = set(teams.get(ticket.department_id or "", ()))
                if ticket.escalation == "escalated":
                    managers |= teams.get(ticket.referent_department_id or "", set())
                user = entry["user_id"]
                viewers = managers | set(ticket.invitees) | {ticket.requester["id"]}
                assert user in viewers, f"{user} told of {entry['event_type']} v{entry['stream_version']}"
                if user not in managers:
                    text = entry["summary_fr"] + (_plain(entry["message"]) if entry["message"] else "")
                    assert SECRET_NOTE not in text and SECRET_REASON not in text, (user, entry["event_type"])

    @invariant()
    def the_assignee_can_see_the_ticket(self) -> None:
        with self.pool.connection() as conn:
            ticket = projections.load_view(conn, self.ticket_id)
        if ticket.assignee is not None and not ticket.is_final:
            managers = set(self.teams.get(ticket.department_id or "", ()))
            if ticket.escalation == "escalated":
                managers |= self.teams.get(ticket.referent_department_id or "", set())
            assert ticket.assignee["id"] in managers, f"assignee {ticket.assignee['id']} cannot see the ticket"


def _plain(raw: bytes) -> str:
    message = message_from_bytes(bytes(raw), policy=policy.default)
    return "".join(part.get_content() for part in message.walk() if part.get_content_maintype() == "text")


def test_who_sees_and_who_hears_under_random_actions_and_changes_of_team(tickets_db):
    run_state_machine_as_test(
        lambda: WhoSeesWhoHears(tickets_db),
        settings=settings(max_examples=15, stateful_step_count=25, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow]),
    )
