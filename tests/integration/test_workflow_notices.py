"""Who hears about what after the workflow fixes of issue #12, for real: the tickets,
routing and notifier services running together over the broker (fixtures of
``test_notifier_flow``), the emails read from an aiosmtpd server and the feed entries
from the notifier's table."""

from __future__ import annotations

from typing import Any

import eventlet
import pytest
from nameko.standalone.rpc import ServiceRpcClient

from services.tickets.domain import InvalidTransition
from tests.helpers import person, wait_until
from tests.integration.test_notifier_flow import services, smtp  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("services")


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


def test_concurrent_takes_one_wins_and_the_requester_hears_once(services, smtp):  # noqa: F811
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
