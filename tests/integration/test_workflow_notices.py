"""Who hears about what after the workflow fixes of issue #12, for real: the tickets,
routing and notifier services running together over the broker (fixtures of
``test_notifier_flow``), the emails read from an aiosmtpd server and the feed entries
from the notifier's table."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import eventlet
import pytest
from nameko.standalone.rpc import ServiceRpcClient

from services.notifier.service import NotifierService
from services.routing.service import RoutingService
from services.tickets.commands import TicketNotFound
from services.tickets.domain import InvalidTransition
from services.tickets.service import TicketsService
from shared import db
from tests.e2e.conftest import forget_escalable_teams
from tests.helpers import SmtpServer, free_port, load_routing, person, wait_until
from tests.integration.test_notifier_delivery import NOTIFIER_TABLES, notifier_config


def _managers(*logins: str) -> list[dict[str, Any]]:
    return [{"user": u, "name": u.title(), "email": f"{u}@univ.example"} for u in logins]


CONFIG = {
    "departments": [
        {"id": "dnum-ent", "label": {"fr": "DNUM - ENT", "en": "IT - ENT"}, "assignment_policy": "none",
         "managers": _managers("marc", "mona", "max")},
        {"id": "support-central", "label": "Support central", "assignment_policy": "round_robin",
         "managers": _managers("sam", "sue")},
        {"id": "scolarite", "label": "Scolarité", "assignment_policy": "none", "managers": _managers("oscar")},
    ],
    "categories": [{"id": "ent-connexion", "label": "Problème de connexion", "department": "dnum-ent"},
                   {"id": "inscriptions", "label": "Inscriptions", "department": "scolarite"}],
}
REASON = "MOTIF-INTERNE-7 annuaire à vérifier côté support"
NOTE_BACK = "NOTE-RETOUR-9 compte recréé, à vous"


@pytest.fixture
def smtp():
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def services(container_factory, broker_uri, database_url, tickets_db, smtp):
    """tickets, routing and notifier running; three teams; ines is known to tickets."""
    forget_escalable_teams(tickets_db)
    with db.connect(database_url) as conn:
        load_routing(conn, CONFIG, NOTIFIER_TABLES)
        conn.execute("INSERT INTO tickets.users (id, name, email, establishment) VALUES"
                     " ('ines', 'Ines', 'ines@univ.example', '0540001A')")
    config = notifier_config(broker_uri, database_url, SMTP_URL=f"smtp://127.0.0.1:{smtp.port}",
                             HTTP_ADDRESSES={"tickets": "127.0.0.1:0", "routing": "127.0.0.1:0",
                                             "notifier": "127.0.0.1:0"})
    container_factory(NotifierService, config).start()
    container_factory(TicketsService, config).start()
    container_factory(RoutingService, config).start()

    def copied():
        with tickets_db.connection() as conn:
            return conn.execute("SELECT (SELECT count(*) FROM notifier.team_managers)"
                                " + (SELECT count(*) FROM tickets.department_managers) AS n").fetchone()["n"] == 12

    wait_until(copied, what="the copies of the teams")
    return tickets_db


class Told:
    """Who was told of each event of one ticket, by feed and by email, once every event
    is handled and every email sent."""

    def __init__(self, pool: Any, inbox: Any, ticket_id: str) -> None:
        def settled() -> list[dict[str, Any]] | None:
            with pool.connection() as conn:
                events = conn.execute(
                    "SELECT event_id::text AS id, event_type, data FROM tickets.events WHERE stream_id = %s"
                    " ORDER BY stream_version", (f"ticket-{ticket_id}",)).fetchall()
                done = conn.execute(
                    "SELECT count(*) AS n FROM notifier.processed_events WHERE event_id::text = ANY(%s)",
                    ([e["id"] for e in events],)).fetchone()["n"]
                pending = conn.execute(
                    "SELECT count(*) AS n FROM notifier.emails WHERE status <> 'sent'").fetchone()["n"]
            return events if done == len(events) and pending == 0 else None

        self.events = wait_until(settled, what="every event handled and its emails sent")
        with pool.connection() as conn:
            self.feed = conn.execute(
                "SELECT event_id::text AS id, user_id, summary_fr FROM notifier.feed_entries").fetchall()
        self.messages = [m for m in inbox.messages if m["X-Guichet-Event"].split()[1]
                         in {e["id"] for e in self.events}]

    def of(self, event_type: str) -> list[tuple[set[str], set[str]]]:
        """(fed, mailed) of each event of that type, in order."""
        out = []
        for event in self.events:
            if event["event_type"] != event_type:
                continue
            fed = {f["user_id"] for f in self.feed if f["id"] == event["id"]}
            mailed = {m["To"].addresses[0].username for m in self.messages
                      if m["X-Guichet-Event"].split()[1] == event["id"]}
            out.append((fed, mailed))
        return out

    def mails_to(self, login: str, event_type: str) -> list[Any]:
        ids = {e["id"] for e in self.events if e["event_type"] == event_type}
        return [m for m in self.messages
                if m["To"].addresses[0].username == login and m["X-Guichet-Event"].split()[1] in ids]


def submitted(rpc: Any, login: str = "alice") -> str:
    ticket = rpc.submit(person(login), "ent-connexion", "Connexion impossible", "Écran blanc.")
    wait_until(lambda: rpc.get(person(login), ticket["id"])["department"], what="the ticket routed")
    return ticket["id"]


def test_concurrent_takes_one_wins_and_the_requester_hears_once(services, smtp):
    with ServiceRpcClient("tickets") as rpc:
        tid = submitted(rpc)
    outcomes: dict[str, str] = {}

    def take(login: str) -> None:
        with ServiceRpcClient("tickets") as own:
            try:
                own.take(person(login), tid)
                outcomes[login] = "taken"
            except InvalidTransition:
                outcomes[login] = "409"

    threads = [eventlet.spawn(take, login) for login in ("marc", "mona")]
    for thread in threads:
        thread.wait()
    assert sorted(outcomes.values()) == ["409", "taken"], outcomes
    [winner] = [login for login, outcome in outcomes.items() if outcome == "taken"]
    [loser] = [login for login, outcome in outcomes.items() if outcome == "409"]

    with ServiceRpcClient("tickets") as rpc:
        # take only on a free ticket; taking over is its own action, offered where it works
        with pytest.raises(InvalidTransition, match="take it over"):
            rpc.take(person("max"), tid)
        seen = rpc.get(person(loser), tid)
        assert "take-over" in seen["allowed_actions"] and "take" not in seen["allowed_actions"]
        taken_over = rpc.take_over(person(loser), tid)
        assert taken_over["assignee"]["id"] == loser
        with pytest.raises(InvalidTransition):
            rpc.take_over(person(loser), tid)

    told = Told(services, smtp.inbox, tid)
    assert [e["event_type"] for e in told.events] == ["TicketSubmitted", "TicketRouted", "TicketAssigned",
                                                      "TicketAssigned"]
    # the first take: the requester is told "prise en charge", once; the taker is not
    # told of what they did; the take-over: the previous assignee only
    assert told.of("TicketAssigned") == [({"alice"}, {"alice"}), ({winner}, {winner})]
    [charge] = told.mails_to("alice", "TicketAssigned")
    assert charge["Subject"].endswith("Demande prise en charge")
    assert winner.title() in charge.get_body(("plain",)).get_content()
    [over] = told.mails_to(winner, "TicketAssigned")
    assert "Demande reprise par" in over["Subject"]
    assert loser.title() in over.get_body(("plain",)).get_content()


def system(service: str) -> dict[str, Any]:
    return {"id": f"system:{service}", "name": service, "kind": "system"}


def test_the_escalation_reason_is_internal_in_history_feed_and_email(services, smtp):
    with ServiceRpcClient("tickets") as rpc:
        tid = submitted(rpc)
        rpc.take(person("marc"), tid)
        rpc.invite(person("alice"), tid, "ines")
        rpc.escalate(person("marc"), tid, REASON)
        rpc.escalate_to(system("escalation"), tid, "support-central", REASON)
        # the support's policy assigns within the support team
        support = wait_until(lambda: (a := rpc.get(person("marc"), tid)["assignee"]) and a["id"] != "marc" and a,
                             what="a support member assigned")["id"]
        assert support in ("sam", "sue")
        rpc.comment(person(support), tid, "Le support regarde.")
        histories = {login: rpc.history(person(login), tid) for login in ("alice", "ines", "marc", "sam")}
        rpc.return_to_referent(person(support), tid, NOTE_BACK)
        after = {login: rpc.history(person(login), tid) for login in ("alice", "marc")}
        # back with the referents, the support member can no longer see it: released
        back = rpc.get(person("marc"), tid)
        assert back["assignee"] is None and back["escalation"] == "returned"
        [release] = [e for e in after["marc"] if e["type"] == "TicketReleased"]
        assert release["data"]["reason"] == "returned to the referents"

    for login in ("alice", "ines"):
        types = [e["type"] for e in histories[login]]
        assert "TicketEscalated" in types and "EscalationRequested" not in types
        assert REASON not in repr(histories[login])
    assert "TicketReturnedToReferent" in [e["type"] for e in after["alice"]]
    assert NOTE_BACK not in repr(after["alice"]) and NOTE_BACK in repr(after["marc"])
    for login in ("marc", "sam"):
        [escalated] = [e for e in histories[login] if e["type"] == "TicketEscalated"]
        assert escalated["data"]["reason"] == REASON

    told = Told(services, smtp.inbox, tid)
    fed, mailed = told.of("TicketEscalated")[0]
    # the support, the requester and the referents are told (the actor is the escalation service)
    assert fed == mailed == {"sam", "sue", "alice", "marc", "mona", "max"}
    for message in told.messages:
        login = message["To"].addresses[0].username
        if login in ("alice", "ines"):
            assert REASON not in message.as_string() and NOTE_BACK not in message.as_string()
    assert any(REASON in m.get_body(("plain",)).get_content() for m in told.mails_to("sam", "TicketEscalated"))
    # returned: the referents and the requester; the support can no longer see the ticket
    fed, mailed = told.of("TicketReturnedToReferent")[0]
    assert fed == mailed == {"marc", "mona", "max", "alice"}
    # the support's public answer reached the referents and the requester (and the invitee)
    [(fed, mailed)] = [c for c in told.of("CommentAdded")]
    assert fed == mailed == {"alice", "ines", "marc", "mona", "max"}
    assert any(NOTE_BACK in m.get_body(("plain",)).get_content()
               for m in told.mails_to("marc", "TicketReturnedToReferent"))
    # the release is told to the referents, not to the support member who lost the ticket
    assert told.of("TicketReleased")[-1] == ({"marc", "mona", "max"}, {"marc", "mona", "max"})
    for entry in told.feed:
        if entry["user_id"] in ("alice", "ines"):
            assert REASON not in entry["summary_fr"] and NOTE_BACK not in entry["summary_fr"]


def change_teams(pool: Any, edit: Any) -> None:
    """An admin's change of routing's catalogue, stored and announced as the routing API does."""
    from services.routing.admin import CatalogueEditor

    CatalogueEditor(pool).change(edit)


def without_manager(department_id: str, login: str) -> Any:
    def edit(catalogue: Any) -> Any:
        department = catalogue.departments[department_id]
        kept = tuple(m for m in department.managers if m.user_id != login)
        return dataclasses.replace(catalogue, departments={
            **catalogue.departments, department_id: dataclasses.replace(department, managers=kept)})
    return edit


def test_a_manager_removed_from_the_department_is_released_and_hears_nothing_more(services, smtp):
    with ServiceRpcClient("tickets") as rpc:
        tid = submitted(rpc)
        rpc.take(person("marc"), tid)
        rpc.watch(person("marc"), tid)
        rpc.watch(person("mona"), tid)
        rpc.comment(person("alice"), tid, "Toujours bloquée.")
        change_teams(services, without_manager("dnum-ent", "marc"))
        released = wait_until(lambda: (t := rpc.get(person("alice"), tid))["assignee"] is None and t,
                              what="the ticket released")
        assert released["status"] == "FREE" and [w["id"] for w in released["watchers"]] == ["mona"]
        with pytest.raises(TicketNotFound):
            rpc.get(person("marc"), tid)
        [release] = [e for e in rpc.history(person("mona"), tid) if e["type"] == "TicketReleased"]
        assert release["actor"]["id"] == "system:tickets"
        assert release["data"]["reason"] == "no longer a manager of the department"
        rpc.comment(person("alice"), tid, "Quelqu'un ?")
        rpc.comment(person("mona"), tid, "NOTE-APRES-DEPART", visibility="internal")

    told = Told(services, smtp.inbox, tid)
    # before: marc, assignee and watcher, heard the comment; after: nothing at all
    first, second = told.of("CommentAdded")[:2]
    assert first == ({"marc", "mona"}, {"marc", "mona"})
    assert second == ({"mona"}, {"mona"})
    released_to = told.of("TicketReleased")
    assert released_to == [({"mona", "max"}, {"mona", "max"})]
    after = {e["id"] for e in told.events[[e["event_type"] for e in told.events].index("TicketReleased"):]}
    assert not [f for f in told.feed if f["user_id"] == "marc" and f["id"] in after]
    assert not [m for m in told.messages if m["To"].addresses[0].username == "marc"
                and m["X-Guichet-Event"].split()[1] in after]


def test_postponed_resumed_closure_expired_and_moved_reach_the_requester_and_the_watchers(services, smtp):
    until = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    with ServiceRpcClient("tickets") as rpc:
        tid = submitted(rpc)
        rpc.take(person("marc"), tid)
        rpc.invite(person("alice"), tid, "ines")
        rpc.watch(person("mona"), tid)
        rpc.postpone(person("marc"), tid, "Attente du fournisseur", until=until.isoformat())
        rpc.resume(person("marc"), tid)
        rpc.request_closure(person("marc"), tid, "Compte réactivé.")
        rpc.expire_closure(system("escalation"), tid)
        other = submitted(rpc)
        rpc.take(person("marc"), other)
        rpc.watch(person("mona"), other)
        rpc.move(person("marc"), other, "inscriptions")
        wait_until(lambda: rpc.get(person("alice"), other)["department"]["id"] == "scolarite", what="moved")

    told = Told(services, smtp.inbox, tid)
    assert told.of("TicketPostponed") == [({"alice", "mona"}, {"alice", "mona"})]
    [postponed] = told.mails_to("alice", "TicketPostponed")
    text = postponed.get_body(("plain",)).get_content()
    assert "Attente du fournisseur" in text and until.strftime("%d/%m/%Y") in text
    assert postponed["Subject"].endswith("Demande reportée")
    assert told.of("TicketResumed") == [({"alice", "mona"}, {"alice", "mona"})]
    assert told.of("ClosureRequested") == [({"alice", "ines", "mona"}, {"alice", "ines", "mona"})]
    assert told.of("ClosureExpired") == [({"alice", "marc", "mona"}, {"alice", "marc", "mona"})]
    [expired] = told.mails_to("alice", "ClosureExpired")
    assert expired["Subject"].endswith("Demande clôturée automatiquement")

    moved = Told(services, smtp.inbox, other)
    assert moved.of("TicketMoved") == [({"alice"}, {"alice"})]  # marc moved it himself
    [to_alice] = moved.mails_to("alice", "TicketMoved")
    assert "Inscriptions" in to_alice.get_body(("plain",)).get_content()
    assert [fed for fed, _ in moved.of("TicketRouted")][-1] == {"oscar"}
    # marc and mona no longer see it: released, the watch ended, neither told of the release
    assert [e["event_type"] for e in moved.events][-3:] == ["TicketRouted", "TicketReleased", "WatchStopped"]
    assert moved.of("TicketReleased") == [({"oscar"}, {"oscar"})]
