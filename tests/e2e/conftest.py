"""End-to-end fixtures: the tickets service running for real (HTTP on a free local port,
RPC and events over a throwaway RabbitMQ vhost, the test database), and an HTTP client
that signs its own tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import requests

from services.tickets.service import TicketsService
from shared.auth import issue_token
from shared.config import Settings
from tests.conftest import add_manager
from tests.helpers import serve

SECRET = "e2e-test-secret-of-at-least-32-bytes!"


@dataclass(frozen=True)
class User:
    login: str
    email: str
    name: str | None = None
    establishment: str | None = "0540001A"
    admin: bool = False


class Api:
    """Real HTTP requests to the running tickets service, as a given user."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.settings = Settings.from_env({"GUICHET_JWT_SECRET": SECRET})

    def token(self, user: User, **overrides: Any) -> str:
        return issue_token(
            self.settings, sub=user.login, email=user.email, name=user.name,
            establishment=user.establishment, admin=user.admin, **overrides,
        )

    def request(self, method: str, path: str, user: User | None = None, *, token: str | None = None,
                **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if token is None and user is not None:
            token = self.token(user)
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.session.request(method, self.base_url + path, headers=headers, timeout=30, **kwargs)

    def get(self, path: str, user: User | None = None, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, user, **kwargs)

    def post(self, path: str, user: User | None = None, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, user, **kwargs)

    def put(self, path: str, user: User | None = None, **kwargs: Any) -> requests.Response:
        return self.request("PUT", path, user, **kwargs)

    def delete(self, path: str, user: User | None = None, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, user, **kwargs)

    # -- shortcuts

    def submit(self, user: User, **fields: Any) -> dict[str, Any]:
        body = {"category_id": "ent-connexion", "subject": "Connexion impossible",
                "description": "Depuis ce matin, écran blanc.", **fields}
        response = self.post("/api/v1/tickets", user, json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def act(self, ticket: dict[str, Any] | str, action: str, user: User, **body: Any) -> requests.Response:
        ticket_id = ticket["id"] if isinstance(ticket, dict) else ticket
        return self.post(f"/api/v1/tickets/{ticket_id}/actions/{action}", user, json=body)


ALICE = User("alice", "alice@univ.example", "Alice Martin")            # requester
BOB = User("bob", "bob@univ.example", "Bob Durand")                    # another user
INES = User("ines", "ines@univ.example", "Inès Petit")                 # invitee
MARC = User("marc", "marc@univ.example", "Marc Leroy")                 # manager of dnum-ent
MONA = User("mona", "mona@univ.example", "Mona Blanc")                 # manager of dnum-ent
OSCAR = User("oscar", "oscar@univ.example", "Oscar Roux")              # manager of another department
ROOT = User("root", "root@univ.example", "Admin", admin=True)          # admin


def forget_escalable_teams(pool: Any) -> None:
    """No announcement of where escalation succeeds left by another test (the tickets
    service then offers escalate wherever the rules allow)."""
    with pool.connection() as conn:
        conn.execute("DELETE FROM tickets.escalable_known")
        conn.execute("DELETE FROM tickets.escalable_teams")


@pytest.fixture
def api(container_factory, broker_uri, database_url, tickets_db, monkeypatch) -> Api:
    """The tickets service on a free port; marc and mona manage dnum-ent, oscar scolarite."""
    monkeypatch.setenv("GUICHET_JWT_SECRET", SECRET)
    forget_escalable_teams(tickets_db)
    for department, user in [("dnum-ent", MARC), ("dnum-ent", MONA), ("scolarite", OSCAR)]:
        add_manager(tickets_db, department, user.login, user.name)
    return Api(serve(container_factory, TicketsService, "tickets", AMQP_URI=broker_uri, DATABASE_URL=database_url))


@pytest.fixture
def routed(api) -> dict[str, Any]:
    """A ticket of alice's, routed to dnum-ent (as routing would), with ines invited."""
    from nameko.standalone.rpc import ServiceRpcClient

    ticket = api.submit(ALICE)
    with ServiceRpcClient("tickets") as tickets:
        tickets.route({"id": "system:routing", "kind": "system"}, ticket["id"], "dnum-ent")
    for user in (INES,):
        api.get("/api/v1/tickets", user)  # the directory learns who ines is
    invited = api.post(f"/api/v1/tickets/{ticket['id']}/invitations", ALICE, json={"user": "ines"})
    assert invited.status_code == 201, invited.text
    return invited.json()
