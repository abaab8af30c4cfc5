"""Writes history.json, the fixed event history of the reporting tests (run it after changing it)."""
import json
import uuid
from pathlib import Path

T = {k: str(uuid.uuid5(uuid.NAMESPACE_URL, f"guichet-reporting-fixture-{k}")) for k in "ABCDEF"}
NUM = {k: 2000 + i for i, k in enumerate("ABCDEF")}
people = {"alice": ("Alice Martin", "0540001A"), "bob": ("Bob Durand", "0540002B")}
def user(login): return {"id": login, "name": login.title(), "email": f"{login}@univ.example"}
def sysa(s): return {"id": f"system:{s}", "name": s, "kind": "system"}
def ua(login): return {"id": login, "name": login.title(), "kind": "user"}
events = []
ver = {}
def ev(k, at, typ, actor, **data):
    ver[k] = ver.get(k, 0) + 1
    events.append({"ticket": k, "ticket_id": T[k], "stream_version": ver[k], "event_type": typ, "schema_version": 1,
                   "occurred_at": at, "actor": actor, "data": data})
def submit(k, at, who, cat, subject):
    ev(k, at, "TicketSubmitted", ua(who), ticket_id=T[k], number=NUM[k], subject=subject, description="Détails.",
       phone=None, priority=3, category_id=cat, establishment=people[who][1], requester=user(who))
def routed(k, at, dept): ev(k, at, "TicketRouted", sysa("routing"), department_id=dept, previous_department_id=None)
def assigned(k, at, who, taken=True):
    ev(k, at, "TicketAssigned", ua(who) if taken else sysa("routing"), assignee=user(who), previous_assignee=None, taken=taken)
c = 0
def comment(k, at, who, body="Réponse", vis="public"):
    global c
    c += 1
    ev(k, at, "CommentAdded", ua(who), comment_id=f"c{c}", body=body, visibility=vis, attachment_ids=[])
    return f"c{c}"
P = "+02:00"
# F: April, stays open
submit("F", "2026-04-14T10:00:00"+P, "bob", "wifi", "Wifi lent")
routed("F", "2026-04-14T10:00:00"+P, "dnum-ent")
assigned("F", "2026-04-14T11:00:00"+P, "marc")
# A
submit("A", "2026-04-30T16:00:00"+P, "alice", "wifi", "Wifi impossible dans l'amphithéâtre")
routed("A", "2026-04-30T16:00:00"+P, "dnum-ent")
assigned("A", "2026-05-04T09:00:00"+P, "marc")
comment("A", "2026-05-04T09:30:00"+P, "marc", "Note interne", "internal")
comment("A", "2026-05-04T10:00:00"+P, "marc")
ev("A", "2026-05-04T10:30:00"+P, "InformationRequested", ua("marc"), question="Quelle salle ?")
cid = comment("A", "2026-05-05T10:30:00"+P, "alice", "Salle B12")
ev("A", "2026-05-05T10:30:00"+P, "InformationProvided", ua("alice"), comment_id=cid)
ev("A", "2026-05-05T14:00:00"+P, "ClosureRequested", ua("marc"), resolution="Borne redémarrée")
ev("A", "2026-05-06T09:00:00"+P, "ClosureApproved", ua("alice"), rating=4, feedback="Merci")
# B
submit("B", "2026-05-13T09:00:00"+P, "bob", "wifi", "Le wifi se coupe sans arrêt")
comment("B", "2026-05-13T09:00:00"+P, "bob", "Précision du demandeur")
routed("B", "2026-05-13T09:00:00"+P, "dnum-ent")
assigned("B", "2026-05-13T09:00:00"+P, "mona", taken=False)
ev("B", "2026-05-15T09:00:00"+P, "ClosureRequested", ua("mona"), resolution="Pilote mis à jour")
ev("B", "2026-05-25T09:00:00"+P, "ClosureExpired", sysa("escalation"))
# C
submit("C", "2026-05-18T10:00:00"+P, "alice", "impression", "L'imprimante du bâtiment B ne répond plus")
routed("C", "2026-05-18T10:00:00"+P, "referents-ent:0540001A")
ev("C", "2026-05-18T10:30:00"+P, "UserInvited", ua("alice"), user=user("ines"))
comment("C", "2026-05-18T10:45:00"+P, "ines", "Moi aussi")
assigned("C", "2026-05-18T11:00:00"+P, "rene")
ev("C", "2026-05-18T14:00:00"+P, "EscalationRequested", ua("rene"), reason="Pilote réseau")
ev("C", "2026-05-18T14:00:00"+P, "TicketEscalated", sysa("escalation"), department_id="support-ent",
   referent_department_id="referents-ent:0540001A", reason="Pilote réseau")
ev("C", "2026-05-18T14:00:00"+P, "TicketReleased", sysa("escalation"), previous_assignee=user("rene"),
   reason="the assignee no longer sees the ticket")
assigned("C", "2026-05-19T09:00:00"+P, "sam")
comment("C", "2026-05-19T09:30:00"+P, "sam")
ev("C", "2026-05-19T10:00:00"+P, "ClosureRequested", ua("sam"), resolution="File d'impression vidée")
ev("C", "2026-05-19T12:00:00"+P, "ClosureApproved", ua("alice"), rating=2, feedback=None)
ev("C", "2026-05-20T09:00:00"+P, "TicketReopened", ua("alice"), reason="Encore en panne", assignee=user("sam"))
ev("C", "2026-05-20T10:00:00"+P, "ClosureRequested", ua("sam"), resolution="Toner changé")
ev("C", "2026-05-20T11:00:00"+P, "ClosureApproved", ua("alice"), rating=5, feedback="Parfait, merci")
# D
submit("D", "2026-05-29T17:00:00"+P, "bob", "wifi", "Connexion wifi impossible")
routed("D", "2026-05-29T17:00:00"+P, "dnum-ent")
ev("D", "2026-05-29T18:00:00"+P, "TicketLabelled", ua("marc"), note="an event type this service does not know")
ev("D", "2026-05-30T10:00:00"+P, "TicketCancelled", ua("bob"), reason="Résolu tout seul")
# E: the academic year boundary
submit("E", "2026-08-31T17:00:00"+P, "alice", "impression", "Imprimante hors service")
routed("E", "2026-08-31T17:00:00"+P, "referents-ent:0540001A")
assigned("E", "2026-09-01T09:00:00"+P, "rene")
ev("E", "2026-09-01T09:30:00"+P, "TicketRefused", ua("rene"), reason="Matériel personnel")
doc = {"about": "A fixed history of six tickets (A to F); tests/unit/reporting/test_history.py and"
                " tests/integration/test_reporting_figures.py state the figures it gives, computed by hand.",
       "tickets": T, "events": events}
json.dump(doc, open(Path(__file__).with_name("history.json"), "w"), ensure_ascii=False, indent=1)
print(len(events))
