"""Who hears about what: the notifier's table (WORKFLOW.md), event type by event type, on
one ticket with a requester, an assignee, invitees, watchers and other managers."""

import pytest

from services.notifier.recipients import NOTIFYING_EVENTS, Fact, Person, TicketPicture, facts_of, recipients
from shared.events import EVENT_SCHEMAS

TICKET_ID = "7d7c2f9e-3f4f-4a55-9b0e-2d7c4a3b1f00"
DEPT, SUPPORT, REFERENTS = "dnum-ent", "support-ent", "referents-ent:0540001A"
TEAMS = {
    DEPT: [Person("marc"), Person("mona"), Person("max")],
    SUPPORT: [Person("vera"), Person("olaf")],
    REFERENTS: [Person("rene"), Person("rita")],
}
ALICE = {"id": "alice", "name": "Alice", "email": "alice@univ.example"}
MARC = {"id": "marc", "name": "Marc", "email": "marc@univ.example"}


def picture(assignee=MARC, status="IN_PROGRESS", department=DEPT, escalation="none", referent=None, **facts):
    summary = {"id": TICKET_ID, "number": 1042, "subject": "Connexion", "status": status,
               "requester": ALICE, "assignee": assignee, "department_id": department, "escalation": escalation}
    base = [
        Fact("invitee", "ines", True), Fact("invitee", "wanda", True),
        Fact("watcher", "wanda", True),  # an invitee who follows the ticket (not a manager)
        Fact("watcher", "mona", True),   # a manager of the department who follows it
        Fact("attachment", "att-public", True, {"visibility": "public", "filename": "a.png"}),
        Fact("attachment", "att-internal", True, {"visibility": "internal", "filename": "b.png"}),
    ]
    if referent:
        base.append(Fact("referent", "", True, {"department_id": referent}))
    return TicketPicture.build(summary, base + list(facts.values()))


def told(event_type, data, actor, pic=None, assigns=False):
    found = recipients(event_type, data, actor, pic or picture(), lambda team: TEAMS.get(team or "", []),
                       lambda team: assigns)
    return {r.person.id for r in found}


PUBLIC_AUDIENCE = {"alice", "marc", "ines", "wanda", "mona"}
USER = {"id": "ines", "name": "Inès", "email": "ines@univ.example"}

# (event type, data, actor, picture or None, expected recipients)
TABLE = [
    ("TicketSubmitted", {}, "alice", picture(assignee=None, status="FREE", department=None), {"alice"}),
    ("TicketRouted", {"department_id": DEPT, "previous_department_id": None}, "system:routing",
     picture(assignee=None, status="FREE"), {"marc", "mona", "max"}),
    ("TicketRouted", {"department_id": DEPT, "previous_department_id": "scolarite"}, "system:routing",
     None, {"marc", "mona", "max"}),
    ("TicketAssigned", {"assignee": MARC, "previous_assignee": None, "taken": True}, "marc", None, {"alice"}),
    ("TicketAssigned", {"assignee": MARC, "previous_assignee": None, "taken": False}, "mona", None,
     {"marc", "alice"}),
    # released: the department's managers (WORKFLOW.md), and the assignee it was taken from
    ("TicketReleased", {"previous_assignee": MARC, "reason": None}, "mona", picture(assignee=None, status="FREE"),
     {"marc", "max"}),
    ("TicketReleased", {"previous_assignee": MARC, "reason": None}, "marc", picture(assignee=None), {"mona", "max"}),
    ("CommentAdded", {"comment_id": "c1", "body": "b", "visibility": "public"}, "marc", None,
     PUBLIC_AUDIENCE - {"marc"}),
    ("CommentAdded", {"comment_id": "c1", "body": "b", "visibility": "public"}, "ines", None,
     PUBLIC_AUDIENCE - {"ines"}),
    ("CommentAdded", {"comment_id": "c1", "body": "b", "visibility": "internal"}, "max", None, {"marc", "mona"}),
    ("CommentAdded", {"comment_id": "c1", "body": "b", "visibility": "internal"}, "marc", None, {"mona"}),
    # the requester answers the question: the assignee hears it as InformationProvided
    ("CommentAdded", {"comment_id": "c1", "body": "b", "visibility": "public"}, "alice",
     picture(status="WAITING_FOR_INFO"), {"ines", "wanda", "mona"}),
    # WORKFLOW.md's table: watchers hear of every step of the ticket's life
    ("InformationRequested", {"question": "q?"}, "marc", picture(status="WAITING_FOR_INFO"),
     {"alice", "wanda", "mona"}),
    ("InformationProvided", {"comment_id": "c1"}, "alice", None, {"marc", "wanda", "mona"}),
    ("TicketPostponed", {"until": None, "reason": "r"}, "marc", picture(status="POSTPONED"),
     {"alice", "wanda", "mona"}),
    ("TicketResumed", {"automatic": True}, "system:escalation", None, {"alice", "marc", "wanda", "mona"}),
    ("TicketResumed", {"automatic": False}, "marc", None, {"alice", "wanda", "mona"}),
    ("ClosureRequested", {"resolution": "done"}, "marc", picture(status="CLOSURE_REQUESTED"),
     {"alice", "ines", "wanda", "mona"}),
    ("ClosureApproved", {"rating": 5, "feedback": None}, "alice", picture(status="CLOSED"), {"marc", "wanda", "mona"}),
    ("ClosureRefused", {"justification": "no"}, "alice", None, {"marc", "wanda", "mona"}),
    ("ClosureExpired", {}, "system:escalation", picture(status="CLOSED"), {"marc", "alice", "wanda", "mona"}),
    ("TicketClosedByOwner", {}, "alice", picture(status="CLOSED"), {"marc", "wanda", "mona"}),
    ("TicketCancelled", {"reason": None}, "alice", picture(status="CANCELLED"), {"marc", "wanda", "mona"}),
    ("TicketCancelled", {"reason": None}, "alice", picture(assignee=None, status="CANCELLED"),
     {"marc", "mona", "max", "wanda"}),
    ("TicketRefused", {"reason": "no"}, "mona", picture(status="REFUSED"), {"alice", "wanda"}),
    ("TicketReopened", {"reason": None, "assignee": MARC}, "alice", None, {"marc", "wanda", "mona"}),
    ("TicketReopened", {"reason": None, "assignee": None}, "alice", picture(assignee=None, status="FREE"),
     {"marc", "mona", "max", "wanda"}),
    # moved: the former assignee and the requester (routing's TicketRouted tells the new team)
    ("TicketMoved", {"category_id": "wifi", "previous_category_id": "ent"}, "mona", None, {"marc", "alice"}),
    ("UserInvited", {"user": USER}, "alice", None, {"ines"}),
    ("InvitationRevoked", {"user": USER}, "alice", None, set()),
    ("WatchStarted", {"user": USER}, "ines", None, set()),
    ("WatchStopped", {"user": USER}, "ines", None, set()),
    ("SubjectChanged", {"subject": "s", "previous_subject": "p"}, "alice", None, set()),
    ("PriorityChanged", {"priority": 4, "previous_priority": 3}, "alice", None, set()),
    ("EscalationRequested", {"reason": "r"}, "rene", picture(department=REFERENTS), set()),
    ("TicketEscalated", {"department_id": SUPPORT, "referent_department_id": REFERENTS, "reason": "r"},
     "system:escalation", picture(assignee=None, department=SUPPORT, escalation="escalated", referent=REFERENTS),
     {"vera", "olaf", "alice", "rene", "rita"}),
    ("EscalationRefused", {"reason": "disabled"}, "system:escalation",
     picture(assignee=None, department=REFERENTS), {"rene", "rita"}),
    ("TicketReturnedToReferent", {"department_id": REFERENTS, "comment": "c"}, "vera",
     picture(assignee=None, department=REFERENTS, escalation="returned"), {"rene", "rita", "alice"}),
    ("AttachmentAdded", {"attachment_id": "att-public", "filename": "a.png", "size": 1, "content_type": "image/png",
                         "visibility": "public"}, "alice", None, PUBLIC_AUDIENCE - {"alice"}),
    ("AttachmentAdded", {"attachment_id": "att-internal", "filename": "b.png", "size": 1,
                         "content_type": "image/png", "visibility": "internal"}, "max", None, {"marc", "mona"}),
    ("AttachmentRemoved", {"attachment_id": "att-public", "comment": "oops"}, "mona", None,
     PUBLIC_AUDIENCE - {"mona"}),
    ("AttachmentRemoved", {"attachment_id": "att-internal", "comment": "oops"}, "mona", None, {"marc"}),
    ("AttachmentRemoved", {"attachment_id": "never-seen", "comment": "oops"}, "max", None, {"marc", "mona"}),
]


@pytest.mark.parametrize(("event_type", "data", "actor", "pic", "expected"), TABLE,
                         ids=[f"{row[0]}-{i}" for i, row in enumerate(TABLE)])
def test_who_hears_about_each_event(event_type, data, actor, pic, expected):
    assert told(event_type, data, actor, pic) == expected


def test_the_table_covers_every_event_type():
    assert {row[0] for row in TABLE} == set(EVENT_SCHEMAS)
    assert {row[0] for row in TABLE if row[4]} == NOTIFYING_EVENTS  # the kinds of email one may turn off


def test_never_the_actor_but_the_acknowledgement_of_a_new_ticket():
    for event_type, data, actor, pic, _ in TABLE:
        if event_type != "TicketSubmitted":
            assert actor not in told(event_type, data, actor, pic), event_type


def test_internal_content_never_reaches_the_requester_or_an_invitee():
    internal = [(e, d, a, p) for e, d, a, p, _ in TABLE
                if d.get("visibility") == "internal" or d.get("attachment_id") in ("att-internal", "never-seen")]
    assert len(internal) == 5
    for event_type, data, actor, pic in internal:
        assert not told(event_type, data, actor, pic) & {"alice", "ines", "wanda"}, event_type


def test_a_team_routing_assigns_at_once_is_not_told_of_the_new_ticket():
    pic = picture(assignee=None, status="FREE")
    data = {"department_id": DEPT, "previous_department_id": None}
    assert told("TicketRouted", data, "system:routing", pic, assigns=True) == set()


def test_managers_of_the_referent_department_see_internal_content_of_an_escalated_ticket():
    pic = picture(assignee=None, department=SUPPORT, escalation="escalated", referent=REFERENTS,
                  w=Fact("watcher", "rene", True))
    data = {"comment_id": "c1", "body": "b", "visibility": "internal"}
    # rene manages the referent team; mona's team handles the ticket no more
    assert told("CommentAdded", data, "vera", pic) == {"rene"}


def test_the_escalation_reason_is_for_managers_only():
    pic = picture(assignee=None, department=SUPPORT, escalation="escalated", referent=REFERENTS)
    data = {"department_id": SUPPORT, "referent_department_id": REFERENTS, "reason": "r"}
    found = recipients("TicketEscalated", data, "system:escalation", pic, lambda t: TEAMS.get(t or "", []))
    assert {r.person.id: r.sees_internal for r in found} == {
        "vera": True, "olaf": True, "alice": False, "rene": True, "rita": True}


def test_facts_follow_invitations_watches_escalations_and_attachments():
    summary = {"status": "IN_PROGRESS"}
    assert facts_of("UserInvited", {"user": USER}, summary) == [
        Fact("invitee", "ines", True, {"name": "Inès", "email": "ines@univ.example"})]
    assert facts_of("WatchStopped", {"user": USER}, summary)[0].present is False
    assert facts_of("TicketEscalated", {"department_id": SUPPORT, "referent_department_id": REFERENTS},
                    summary) == [Fact("referent", "", True, {"department_id": REFERENTS})]
    assert facts_of("TicketReturnedToReferent", {"department_id": REFERENTS, "comment": "c"}, summary) == [
        Fact("referent", "", False)]
    assert facts_of("CommentAdded", {"comment_id": "c", "body": "b", "visibility": "public"}, summary) == []
    assert facts_of("CommentAdded", {"comment_id": "c", "body": "b", "visibility": "public"},
                    {"status": "WAITING_FOR_INFO"}) == [Fact("answer", "c", True, {"body": "b"})]
