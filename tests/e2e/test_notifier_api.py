"""The notifier's HTTP API over real HTTP: the feed with its cursor and unread count,
marking entries read, preferences, and garbage input answered 400/404/413/415/422,
never 500; 401 without a token."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.notifier.schemas import EMAIL_KINDS
from services.notifier.service import NotifierService
from tests.e2e.conftest import ALICE, BOB, SECRET, Api
from tests.helpers import serve

TICKET = str(uuid.uuid4())


@pytest.fixture
def notifier(container_factory, broker_uri, database_url, pool, monkeypatch) -> Api:
    monkeypatch.setenv("GUICHET_JWT_SECRET", SECRET)
    with pool.connection() as conn:
        conn.execute("TRUNCATE notifier.feed_entries, notifier.preferences, notifier.people")
        start = datetime(2025, 3, 1, tzinfo=UTC)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO notifier.feed_entries (user_id, event_id, ticket_id, ticket_number, event_type,"
                " summary_fr, summary_en, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [("alice", str(uuid.uuid4()), TICKET, 1000 + i, "CommentAdded", f"Commentaire {i}", f"Comment {i}",
                  start + timedelta(minutes=i)) for i in range(25)]
                + [("bob", str(uuid.uuid4()), TICKET, 2000, "TicketRouted", "Pour Bob", "For Bob", start)],
            )
    return Api(serve(container_factory, NotifierService, "notifier", AMQP_URI=broker_uri, DATABASE_URL=database_url,
                     SMTP_URL=""))


def test_the_feed_pages_newest_first_and_counts_the_unread(notifier):
    first = notifier.get("/api/v1/feed?limit=10", ALICE)
    assert first.status_code == 200, first.text
    page = first.json()
    assert page["unread"] == 25 and len(page["items"]) == 10 and page["next_cursor"]
    assert [i["ticket_number"] for i in page["items"]] == list(range(1024, 1014, -1))
    item = page["items"][0]
    assert item == {"id": item["id"], "ticket_id": TICKET, "ticket_number": 1024, "event_type": "CommentAdded",
                    "summary": "Commentaire 24", "created_at": "2025-03-01T00:24:00+00:00", "read": False}
    numbers = [i["ticket_number"] for i in page["items"]]
    cursor = page["next_cursor"]
    while cursor:
        page = notifier.get("/api/v1/feed", ALICE, params={"limit": 10, "cursor": cursor}).json()
        numbers += [i["ticket_number"] for i in page["items"]]
        cursor = page["next_cursor"]
    assert numbers == list(range(1024, 999, -1))  # all of alice's, none of bob's

    read = notifier.post(f"/api/v1/feed/{item['id']}/read", ALICE)
    assert read.status_code == 204 and read.content == b""
    assert notifier.post(f"/api/v1/feed/{item['id']}/read", ALICE, json={}).status_code == 204  # again: fine
    unread = notifier.get("/api/v1/feed?unread=true&limit=100", ALICE).json()
    assert unread["unread"] == 24 and item["id"] not in {i["id"] for i in unread["items"]}
    assert len(unread["items"]) == 24
    assert notifier.get("/api/v1/feed", ALICE).json()["items"][0]["read"] is True

    bobs = notifier.get("/api/v1/feed", BOB).json()["items"][0]["id"]
    assert notifier.post(f"/api/v1/feed/{bobs}/read", ALICE).status_code == 404  # not hers
    assert notifier.post("/api/v1/feed/read-all", ALICE).status_code == 204
    assert notifier.get("/api/v1/feed", ALICE).json()["unread"] == 0
    assert notifier.get("/api/v1/feed", BOB).json()["unread"] == 1


def test_preferences_set_the_language_and_turn_kinds_of_email_off(notifier):
    default = notifier.get("/api/v1/preferences", ALICE)
    assert default.status_code == 200
    assert default.json() == {"language": "fr", "email": {kind: True for kind in EMAIL_KINDS}}
    changed = notifier.put("/api/v1/preferences", ALICE,
                           json={"language": "en", "email": {"CommentAdded": False, "TicketRouted": False}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["language"] == "en"
    assert [k for k, on in changed.json()["email"].items() if not on] == ["CommentAdded", "TicketRouted"]
    again = notifier.put("/api/v1/preferences", ALICE, json={"email": {"TicketRouted": True}}).json()
    assert again["language"] == "en" and [k for k, on in again["email"].items() if not on] == ["CommentAdded"]
    assert notifier.get("/api/v1/preferences", ALICE).json() == again
    assert notifier.get("/api/v1/feed?limit=1", ALICE).json()["items"][0]["summary"] == "Comment 24"
    assert notifier.get("/api/v1/preferences", BOB).json()["language"] == "fr"


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/feed"), ("POST", f"/api/v1/feed/{uuid.uuid4()}/read"), ("POST", "/api/v1/feed/read-all"),
    ("GET", "/api/v1/preferences"), ("PUT", "/api/v1/preferences"),
])
def test_no_token_no_answer(notifier, method, path):
    for token in (None, "garbage", notifier.token(ALICE, ttl_seconds=-3600)):
        response = notifier.request(method, path, token=token, json={})
        assert response.status_code == 401, (path, token, response.text)
        assert response.headers["Content-Type"] == "application/problem+json"


def test_open_paths(notifier):
    assert notifier.get("/healthz").status_code == 200
    assert notifier.get("/readyz").json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}
    document = notifier.get("/api/v1/openapi.json").json()
    assert {"/api/v1/feed", "/api/v1/feed/{entry_id}/read", "/api/v1/feed/read-all",
            "/api/v1/preferences"} <= set(document["paths"])


@pytest.mark.parametrize("query", [
    "limit=0", "limit=101", "limit=abc", "limit=2.5", "unread=yes", "unread=1", "cursor=garbage",
    "cursor=" + base64.urlsafe_b64encode(b'["feed", -1]').decode(), "cursor=" + "A" * 300, "colour=blue",
    "cursor=%00",
])
def test_garbage_feed_queries_are_422(notifier, query):
    response = notifier.get(f"/api/v1/feed?{query}", ALICE)
    assert response.status_code == 422, response.text
    assert response.json()["status"] == 422


@pytest.mark.parametrize(("body", "headers", "status"), [
    (b"{not json", {"Content-Type": "application/json"}, 400),
    (b"", {"Content-Type": "application/json"}, 400),
    (b"[]", {"Content-Type": "application/json"}, 400),
    (b'"en"', {"Content-Type": "application/json"}, 400),
    (b'{"language": "en"}', {"Content-Type": "text/plain"}, 415),
    (b'{"language": "de"}', {"Content-Type": "application/json"}, 422),
    (b'{"language": null}', {"Content-Type": "application/json"}, 422),
    (b'{"email": {"Nope": false}}', {"Content-Type": "application/json"}, 422),
    (b'{"email": {"CommentAdded": "no"}}', {"Content-Type": "application/json"}, 422),
    (b'{"email": {"CommentAdded": 0}}', {"Content-Type": "application/json"}, 422),
    (b'{"email": []}', {"Content-Type": "application/json"}, 422),
    (b'{"email": {"CommentAdded": false}, "theme": "dark"}', {"Content-Type": "application/json"}, 422),
    (b'{"language": "en\\u0000"}', {"Content-Type": "application/json"}, 422),
    (b'{"language": "' + b"x" * 300_000 + b'"}', {"Content-Type": "application/json"}, 413),
])
def test_garbage_preferences_change_nothing(notifier, body, headers, status):
    response = notifier.put("/api/v1/preferences", ALICE, data=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert notifier.get("/api/v1/preferences", ALICE).json()["language"] == "fr"


@pytest.mark.parametrize(("path", "body", "headers", "status"), [
    ("/api/v1/feed/not-a-uuid/read", None, {}, 404),
    (f"/api/v1/feed/{uuid.uuid4()}/read", None, {}, 404),
    ("/api/v1/feed/%00/read", None, {}, 400),
    ("/api/v1/feed/read-all", b"{not json", {"Content-Type": "application/json"}, 400),
    ("/api/v1/feed/read-all", b'{"all": true}', {"Content-Type": "application/json"}, 422),
    ("/api/v1/feed/read-all", b"yes", {"Content-Type": "text/plain"}, 415),
])
def test_garbage_reads_are_refused(notifier, path, body, headers, status):
    response = notifier.post(path, ALICE, data=body, headers=headers)
    assert response.status_code == status, response.text
    assert notifier.get("/api/v1/feed", ALICE).json()["unread"] == 25


def test_the_api_keeps_to_its_document(notifier):
    from tests.e2e.test_openapi_fuzz import run_schemathesis

    result = run_schemathesis(notifier, ALICE, max_examples=10)
    assert result.returncode == 0, result.stdout[-6000:]
    assert "generated" in result.stdout
