"""Rebuilding the ticket view from the event log gives exactly the live rows."""

import os
import random
import subprocess
import sys

from services.tickets import domain
from services.tickets.commands import Conflict, IdempotencyKeyReused, TicketCommands, TicketNotFound, UnknownUser
from tests.conftest import ROOT, add_manager

PEOPLE = [
    domain.Actor("alice", "Alice", "alice@univ.example", establishment="0540001A"),
    domain.Actor("bob", "Bob", "bob@univ.example", establishment="0540002B"),
    domain.Actor("marc", "Marc", "marc@univ.example"),
    domain.Actor("mona", "Mona", "mona@univ.example"),
    domain.Actor("sam", "Sam", "sam@univ.example"),
    domain.Actor("root", "Admin", "root@univ.example", admin=True),
]
SYSTEM = [domain.Actor.system("routing"), domain.Actor.system("escalation")]
TEXT = ["Bonjour", "Merci, ça marche", "   ", "Écran noir à la connexion"]


def random_action(rng: random.Random) -> tuple[str, dict]:
    action = rng.choice(sorted(domain.COMMANDS))
    text = rng.choice(TEXT)
    args = {
        "comment": {"comment_id": f"c{rng.random()}", "body": text, "visibility": rng.choice(["public", "internal"])},
        "assign": {"assignee": rng.choice(["marc", "mona", "sam"])},
        "release": {}, "take": {}, "take_over": {}, "recheck_access": {}, "resume": {}, "expire_closure": {}, "close": {},
        "request_information": {"question": text},
        "postpone": {"reason": text},
        "request_closure": {"resolution": text},
        "approve_closure": {"rating": rng.choice([None, 1, 5])},
        "refuse_closure": {"justification": text},
        "cancel": {"reason": text}, "refuse": {"reason": text}, "reopen": {},
        "move": {"category_id": rng.choice(["wifi", "impression", "ent-connexion"])},
        "route": {"department_id": rng.choice(["dnum-ent", "support"])},
        "invite": {"user": rng.choice(["bob", "sam"])},
        "uninvite": {"user_id": rng.choice(["bob", "sam"])},
        "watch": {}, "unwatch": {},
        "attach": {"attachment_id": f"a{rng.randint(1, 3)}", "filename": "écran.png", "size": 10,
                   "content_type": "image/png", "visibility": rng.choice(["public", "internal"])},
        "remove_attachment": {"attachment_id": f"a{rng.randint(1, 3)}", "comment": text},
        "change_subject": {"subject": text},
        "change_priority": {"priority": rng.randint(1, 5)},
        "escalate": {"reason": text},
        "escalate_to": {"department_id": "support"},
        "return_to_referent": {"comment": text},
        "refuse_escalation": {"reason": text},
    }[action]
    return action, args


def view_rows(pool) -> list[dict]:
    with pool.connection() as conn:
        return conn.execute("SELECT * FROM tickets.ticket_view ORDER BY id").fetchall()


def test_rebuilt_views_equal_the_live_ones_after_hundreds_of_random_actions(tickets_db, database_url):
    for user, dept in [("marc", "dnum-ent"), ("mona", "dnum-ent"), ("sam", "support")]:
        add_manager(tickets_db, dept, user)
    with tickets_db.connection() as conn:
        conn.execute("INSERT INTO tickets.users (id, name, email) VALUES ('bob', 'Bob', 'bob@univ.example')")
    commands = TicketCommands(tickets_db)
    rng = random.Random(20261129)
    tickets = [commands.execute("submit", rng.choice(PEOPLE[:2]), args={
        "category_id": "ent-connexion", "subject": f"Demande {i}", "description": "Détails"}) for i in range(12)]
    applied = attempts = 0
    while applied < 300 and attempts < 20_000:  # most random actions are refused by the rules
        attempts += 1
        action, args = random_action(rng)
        actor = rng.choice(PEOPLE + SYSTEM + PEOPLE[:4])  # requesters and managers act most
        try:
            commands.execute(action, actor, rng.choice(tickets)["id"], args)
            applied += 1
        except (domain.DomainError, TicketNotFound, UnknownUser, Conflict, IdempotencyKeyReused):
            pass
    assert applied >= 300  # a few hundred actions really moved the tickets

    live = view_rows(tickets_db)
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_FORMAT": "json"}
    subprocess.run([sys.executable, "-m", "services.cli", "rebuild-projections"], cwd=ROOT, env=env, check=True)
    rebuilt = view_rows(tickets_db)
    assert len(live) == 12
    assert rebuilt == live
