"""``Idempotency-Key`` on the POSTs and PUTs of every service (API.md, "Errors"), through
real HTTP to the running services: per caller, a repeat returns the first answer and
changes nothing; the same key with another body is 422."""

from __future__ import annotations

import pytest

from services.escalation.service import EscalationService
from services.notifier.service import NotifierService
from services.routing.service import RoutingService
from shared import db
from tests.e2e.conftest import ALICE, BOB, INES, MARC, MONA, ROOT, SECRET, Api
from tests.e2e.test_attachments_api import PNG, files  # noqa: F401 - the fixture
from tests.e2e.test_routing_api import CONFIG as ROUTING_CONFIG
from tests.e2e.test_tickets_api import ok, problem
from tests.helpers import load_routing, serve
from tests.integration.test_escalation_flow import ESCALATION_TABLES


def keyed(key: str) -> dict[str, dict[str, str]]:
    return {"headers": {"Idempotency-Key": key}}


def test_ticket_comments_actions_invitations_and_watchers_honour_the_key(api, routed):
    tid = routed["id"]
    path = f"/api/v1/tickets/{tid}"
    first = ok(api.post(f"{path}/comments", ALICE, json={"body": "Toujours bloquée"}, **keyed("c-1")), 201)
    again = ok(api.post(f"{path}/comments", ALICE, json={"body": "Toujours bloquée"}, **keyed("c-1")), 201)
    assert again == first
    assert len(ok(api.get(path, ALICE))["comments"]) == 1
    error = problem(api.post(f"{path}/comments", ALICE, json={"body": "Autre chose"}, **keyed("c-1")), 422)
    assert "Idempotency-Key" in error["detail"]
    # per caller: the same key from someone else is their own request
    ok(api.post(f"{path}/comments", MARC, json={"body": "Je regarde"}, **keyed("c-1")), 201)
    assert len(ok(api.get(path, ALICE))["comments"]) == 2

    taken = ok(api.post(f"{path}/actions/take", MARC, json={}, **keyed("t-1")))
    assert ok(api.post(f"{path}/actions/take", MARC, json={}, **keyed("t-1"))) == taken  # not a 409
    problem(api.post(f"{path}/actions/take", MONA, json={}), 409)  # without a key: taken already

    api.get("/api/v1/tickets", BOB)  # the directory learns who bob is
    invited = ok(api.post(f"{path}/invitations", ALICE, json={"user": "bob"}, **keyed("i-1")), 201)
    assert ok(api.post(f"{path}/invitations", ALICE, json={"user": "bob"}, **keyed("i-1")), 201) == invited
    problem(api.post(f"{path}/invitations", ALICE, json={"user": "bob"}), 409)  # already invited

    watched = ok(api.put(f"{path}/watchers/me", INES, **keyed("w-1")))
    assert ok(api.put(f"{path}/watchers/me", INES, **keyed("w-1"))) == watched
    history = ok(api.get(f"{path}/history", MARC))["items"]
    assert [e["type"] for e in history].count("WatchStarted") == 1
    assert [e["type"] for e in history].count("UserInvited") == 2  # ines, then bob once
    problem(api.post(f"{path}/comments", ALICE, json={"body": "x"}, headers={"Idempotency-Key": "k" * 201}), 400)


@pytest.fixture
def routing(container_factory, broker_uri, database_url, monkeypatch) -> Api:
    monkeypatch.setenv("GUICHET_JWT_SECRET", SECRET)
    with db.connect(database_url) as conn:
        load_routing(conn, ROUTING_CONFIG)
        conn.execute("TRUNCATE routing.idempotency_keys")
    return Api(serve(container_factory, RoutingService, "routing", AMQP_URI=broker_uri, DATABASE_URL=database_url))


def test_routing_admin_writes_honour_the_key(routing, database_url):
    body = {"id": "wifi", "label": "Wifi", "department_id": "dnum-ent"}
    first = routing.post("/api/v1/categories", ROOT, json=body, **keyed("cat-1"))
    assert first.status_code == 201
    again = routing.post("/api/v1/categories", ROOT, json=body, **keyed("cat-1"))
    assert (again.status_code, again.json(), again.headers["Location"]) == (201, first.json(), "/api/v1/categories/wifi")
    assert routing.post("/api/v1/categories", ROOT, json=body).status_code == 409  # without: it exists
    problem(routing.post("/api/v1/categories", ROOT, json={**body, "label": "Réseau"}, **keyed("cat-1")), 422)
    with db.connect(database_url) as conn:
        announced = conn.execute("SELECT count(*) AS n FROM routing.outbox").fetchone()["n"]
    update = {"id": "wifi", "label": "Wi-Fi", "department_id": "dnum-ent"}
    put = ok(routing.put("/api/v1/categories/wifi", ROOT, json=update, **keyed("cat-2")))
    assert ok(routing.put("/api/v1/categories/wifi", ROOT, json=update, **keyed("cat-2"))) == put
    with db.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) AS n FROM routing.outbox").fetchone()["n"] == announced + 1


@pytest.fixture
def notifier(container_factory, broker_uri, database_url, pool, monkeypatch) -> Api:
    monkeypatch.setenv("GUICHET_JWT_SECRET", SECRET)
    with pool.connection() as conn:
        conn.execute("TRUNCATE notifier.preferences, notifier.idempotency_keys")
    return Api(serve(container_factory, NotifierService, "notifier", AMQP_URI=broker_uri, DATABASE_URL=database_url,
                     SMTP_URL="", MAIL_DIR="var/mail-test"))


def test_notifier_preferences_and_feed_honour_the_key(notifier):
    first = ok(notifier.put("/api/v1/preferences", ALICE, json={"language": "en"}, **keyed("p-1")))
    # alice changes her mind without a key, then her first request is retried: nothing changes
    ok(notifier.put("/api/v1/preferences", ALICE, json={"language": "fr"}))
    assert ok(notifier.put("/api/v1/preferences", ALICE, json={"language": "en"}, **keyed("p-1"))) == first
    assert ok(notifier.get("/api/v1/preferences", ALICE))["language"] == "fr"
    problem(notifier.put("/api/v1/preferences", ALICE, json={"language": "fr"}, **keyed("p-1")), 422)
    assert notifier.post("/api/v1/feed/read-all", ALICE, **keyed("r-1")).status_code == 204
    assert notifier.post("/api/v1/feed/read-all", ALICE, **keyed("r-1")).status_code == 204


@pytest.fixture
def escalation(container_factory, broker_uri, database_url, pool, monkeypatch) -> Api:
    monkeypatch.setenv("GUICHET_JWT_SECRET", SECRET)
    with pool.connection() as conn:
        # no copy of routing's catalogue left by another test: the settings are not checked against one
        conn.execute(f"TRUNCATE {ESCALATION_TABLES}, escalation.idempotency_keys")
    return Api(serve(container_factory, EscalationService, "escalation", AMQP_URI=broker_uri,
                     DATABASE_URL=database_url))


def test_escalation_settings_honour_the_key(escalation):
    path = "/api/v1/establishments/0540001A/escalation"
    body = {"enabled": True, "support_department_id": "support-central"}
    first = escalation.put(path, ROOT, json=body, **keyed("s-1"))
    assert first.status_code == 200, first.text
    assert escalation.put(path, ROOT, json=body, **keyed("s-1")).json() == first.json()
    problem(escalation.put(path, ROOT, json={**body, "enabled": False}, **keyed("s-1")), 422)
    assert escalation.get(path, ROOT).json()["enabled"] is True


def test_an_upload_honours_the_key(files):  # noqa: F811 - the fixture imported above
    first = files.upload(ALICE, headers={"Idempotency-Key": "u-1"})
    assert first.status_code == 201, first.text
    again = files.upload(ALICE, headers={"Idempotency-Key": "u-1"})
    assert (again.status_code, again.json()) == (201, first.json())
    assert len(files.rows()) == 1
    other = files.upload(ALICE, PNG + b"\0", headers={"Idempotency-Key": "u-1"})
    assert other.status_code == 422 and "Idempotency-Key" in other.json()["detail"]
    assert len(files.rows()) == 1
    assert files.upload(BOB, headers={"Idempotency-Key": "u-1"}).status_code == 201  # bob's own key
    assert len(files.rows()) == 2
