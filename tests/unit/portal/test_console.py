"""The console's own logic: the row's marker, the sorts, the recall date of a postpone,
the category picker, and the ticket page's manager actions rendered from
``allowed_actions`` (every one of them, in both languages)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.portal import console, i18n, richtext, words

REQUESTER = {"id": "alice", "name": "Alice Martin"}
MANAGER = {"id": "mleroy", "name": "Marc Leroy"}


def ticket(status: str = "IN_PROGRESS", comments: list[dict[str, Any]] | None = None, **more: Any) -> dict[str, Any]:
    return {"number": 53350, "subject": "S", "status": status, "requester": REQUESTER, "invitees": [],
            "comments": comments or [], "priority": 3, "created_at": "2026-12-01T10:00:00+00:00", **more}


def comment(author: dict[str, str], visibility: str = "public") -> dict[str, Any]:
    return {"author": author, "visibility": visibility, "body": "x"}


def test_the_marker_shows_when_the_requester_wrote_last():
    assert console.waits_for_manager(ticket(comments=[comment(MANAGER), comment(REQUESTER)]))
    assert not console.waits_for_manager(ticket(comments=[comment(REQUESTER), comment(MANAGER)]))
    assert not console.waits_for_manager(ticket(comments=[]))
    # An internal note after the requester's comment does not answer them.
    assert console.waits_for_manager(ticket(comments=[comment(REQUESTER), comment(MANAGER, "internal")]))
    # An invitee's comment waits too; a ticket waiting for the requester does not.
    invitee = {"id": "ines", "name": "Inès"}
    assert console.waits_for_manager(ticket(comments=[comment(invitee)], invitees=[invitee]))
    assert not console.waits_for_manager(ticket("WAITING_FOR_INFO", comments=[comment(REQUESTER)]))
    assert not console.waits_for_manager(ticket("CLOSED", comments=[comment(REQUESTER)]))


def test_the_sorts():
    old = ticket(number=1, priority=2, created_at="2026-01-01T00:00:00+00:00")
    new = ticket(number=2, priority=5, created_at="2026-06-01T00:00:00+00:00")
    mid = ticket(number=3, priority=5, created_at="2026-03-01T00:00:00+00:00")
    page = [new, old, mid]
    assert [t["number"] for t in console.sort_tickets(page, "activity")] == [2, 1, 3]
    assert [t["number"] for t in console.sort_tickets(page, "age")] == [1, 3, 2]
    assert [t["number"] for t in console.sort_tickets(page, "priority")] == [3, 2, 1]


def test_a_postpone_date_is_8_am_paris_time():
    assert console.until_of("2026-12-24") == "2026-12-24T08:00:00+01:00"
    assert console.until_of("2026-07-14") == "2026-07-14T08:00:00+02:00"
    for bad in ("", "24/12/2026", "2026-13-01", "demain"):
        assert console.until_of(bad) is None


def test_age_in_days():
    now = datetime.fromisoformat("2026-12-05T12:00:00+00:00")
    assert console.age("2026-12-01T10:00:00+00:00", now)[0] == 4
    assert console.age(None, now) == (0, "")
    assert console.age("not a date", now) == (0, "")


def test_labels_and_the_flattened_tree():
    assert console.label_of({"id": "x", "label": {"fr": "Tri", "en": "Triage"}}, "en") == "Triage"
    assert console.label_of({"id": "x", "label": {"fr": "Tri"}}, "en") == "Tri"
    assert console.label_of({"id": "x"}, "fr") == "x"
    tree = [{"id": "a", "label": "A", "children": [{"id": "b", "label": "B", "children": []}]}, {"id": "c", "label": "C"}]
    assert [(n["id"], d) for n, d in console.flatten(tree)] == [("a", 0), ("b", 1), ("c", 0)]


def render_actions(actions: set[str], language: str = "fr", **context: Any) -> str:
    tr = i18n.load_translations()[language]
    env = Environment(loader=FileSystemLoader(console.__file__.rsplit("/", 1)[0] + "/templates"),
                      autoescape=select_autoescape(("html",)), extensions=["jinja2.ext.i18n"],
                      trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_translations(tr, newstyle=True)  # type: ignore[attr-defined]
    env.filters["rich"] = richtext.render
    env.globals["new_key"] = lambda: "key"
    values = {"ticket": ticket(category={"id": "autre", "label": "Autre"}, assignee=None,
                               attachments=[{"id": "f1", "filename": "capture.png"}]),
              "actions": actions, "errors": {}, "values": {}, "open_action": None, "csrf_token": "t",
              "managers": [{"user": "mleroy", "name": "Marc Leroy", "available": True, "open": 2}],
              "categories": [({"id": "wifi", "label": "Wi-Fi"}, 1)], "priority_label": lambda p: str(p),
              "status_label": lambda s: words.status_label(tr, s), **context}
    return env.get_template("console_actions.html").render(**values)


EVERY_ACTION = {"take", "take-over", "assign", "release", "request-information", "postpone", "resume",
                "request-closure", "refuse", "move", "comment-internal", "escalate", "return-to-referent",
                "remove-attachment"}


@pytest.mark.parametrize("language", ["fr", "en"])
def test_every_manager_action_renders(language: str):
    html = render_actions(EVERY_ACTION, language)
    for action in ("take", "take-and-ask", "take-and-close", "assign", "release", "request-information",
                   "postpone", "resume", "request-closure", "refuse", "move", "internal-comment", "escalate",
                   "return-to-referent", "remove-attachment"):
        assert f'action="/console/tickets/53350/{action}"' in html, action
    assert 'href="/console/tickets/53350/take-over"' in html
    assert ("Prendre en charge et demander info" if language == "fr" else "Take in charge and ask for information") in html


def test_only_the_allowed_actions_show():
    assert render_actions(set()).strip() == ""
    html = render_actions({"take"})
    assert "/take-and-close" in html and "/release" not in html and "/escalate" not in html
    html = render_actions({"escalate"})
    assert "Transmettre la demande au support" in html and "/take" not in html


def test_a_refusal_of_an_action_no_longer_offered_still_shows():
    html = render_actions({"take-over"}, errors={"take": {"_form": "Camille Faure a pris en charge cette demande"}})
    assert "Camille Faure a pris en charge cette demande" in html and 'role="alert"' in html


def event(kind: str, who: str | None, **data: Any) -> dict[str, Any]:
    actor = {"id": who, "name": who, "kind": "user"} if who else {"id": "routing", "kind": "system"}
    return {"type": kind, "actor": actor, "data": data}


def test_the_thread_names_who_wrote_each_message():
    history = [
        event("TicketSubmitted", "bob"),
        event("TicketRouted", None, department_id="referents-ent:0540001A"),
        event("CommentAdded", "smartin", visibility="public"),
        event("EscalationRequested", "smartin", reason="r"),
        event("TicketEscalated", None, department_id="support-ent", referent_department_id="referents-ent:0540001A"),
        event("CommentAdded", "olambert", visibility="public"),
        event("CommentAdded", "smartin", visibility="public"),
        event("CommentAdded", "bob", visibility="public"),
        event("CommentAdded", "ines", visibility="public"),
        event("TicketReturnedToReferent", "olambert", department_id="referents-ent:0540001A", comment="c"),
    ]
    found = words.roles(history, {"requester": {"id": "bob"}, "invitees": [{"id": "ines"}]})
    assert found == [None, None, "référent", "référent", None, "support", "référent", "demandeur", "invité(e)",
                     "support"]
    # Without an escalation, a manager is a manager.
    plain = [event("TicketRouted", None, department_id="triage"), event("CommentAdded", "mleroy")]
    assert words.roles(plain, {"requester": {"id": "alice"}}) == [None, "gestionnaire"]


def test_a_department_per_establishment_has_one_queue_per_establishment():
    departments = [
        {"id": "triage", "per_establishment": False, "managers": [{"user": "mleroy"}]},
        {"id": "referents-ent", "per_establishment": True, "managers": [
            {"user": "smartin", "establishment": "0540001A"}, {"user": "amoreau", "establishment": "0880012B"}]},
    ]
    assert [t["id"] for t in console.teams(departments, "smartin", False)] == ["triage", "referents-ent:0540001A"]
    assert [t["mine"] for t in console.teams(departments, "smartin", False)] == [False, True]
    assert [t["id"] for t in console.teams(departments, "root", True)] == [
        "triage", "referents-ent:0540001A", "referents-ent:0880012B"]
