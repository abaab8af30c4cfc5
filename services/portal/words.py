"""The portal's words for the domain's values: statuses, priorities, each history event
as a sentence ("Marc Leroy a pris en charge la demande."), dates, sizes, kinds of email.

Texts are French msgids (``i18n.N_`` marks them), translated where they are shown.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.support import Translations
from markupsafe import Markup

from services.portal import richtext
from services.portal.i18n import N_

STATUSES = {
    "FREE": N_("Libre"),
    "IN_PROGRESS": N_("En cours"),
    "WAITING_FOR_INFO": N_("En attente d'information"),
    "POSTPONED": N_("Reporté"),
    "CLOSURE_REQUESTED": N_("Clôture demandée"),
    "CLOSED": N_("Clôturé"),
    "CANCELLED": N_("Annulé"),
    "REFUSED": N_("Refusé"),
}
OPEN_STATUSES = ("FREE", "IN_PROGRESS", "WAITING_FOR_INFO", "POSTPONED", "CLOSURE_REQUESTED")

PRIORITIES = {1: N_("Très basse"), 2: N_("Basse"), 3: N_("Normale"), 4: N_("Haute"), 5: N_("Très haute")}

RESOLUTIONS = {
    "approved": N_("clôture approuvée"),
    "expired": N_("clôturé automatiquement"),
    "closed_by_owner": N_("clôturé par le demandeur"),
}

# The notifier's kinds of email (its /api/v1/preferences); an unknown kind shows its name.
EMAIL_KINDS = {
    "TicketSubmitted": N_("Accusé de réception de mes demandes"),
    "TicketRouted": N_("Demande orientée vers un service"),
    "TicketAssigned": N_("Prise en charge d'une demande"),
    "TicketReleased": N_("Demande libérée"),
    "CommentAdded": N_("Nouveaux commentaires"),
    "InformationRequested": N_("Demandes de complément d'information"),
    "InformationProvided": N_("Réponses aux demandes d'information"),
    "TicketResumed": N_("Reprise d'une demande reportée"),
    "ClosureRequested": N_("Propositions de clôture"),
    "ClosureApproved": N_("Clôture approuvée"),
    "ClosureRefused": N_("Clôture refusée"),
    "ClosureExpired": N_("Clôture automatique"),
    "TicketClosedByOwner": N_("Demande clôturée par le demandeur"),
    "TicketCancelled": N_("Demande annulée"),
    "TicketRefused": N_("Demande refusée"),
    "TicketReopened": N_("Demande ré-ouverte"),
    "TicketMoved": N_("Demande déplacée vers une autre catégorie"),
    "UserInvited": N_("Invitation sur une demande"),
    "TicketEscalated": N_("Transmission au support"),
    "EscalationRefused": N_("Transmission au support refusée"),
    "TicketReturnedToReferent": N_("Retour au référent"),
    "AttachmentAdded": N_("Fichier ajouté"),
    "AttachmentRemoved": N_("Fichier retiré"),
}

PARIS = ZoneInfo("Europe/Paris")


def status_label(tr: Translations, status: str | None) -> str:
    return tr.gettext(STATUSES[status]) if status in STATUSES else (status or "")


def priority_label(tr: Translations, priority: Any) -> str:
    return tr.gettext(PRIORITIES[priority]) if priority in PRIORITIES else str(priority or "")


def when(tr: Translations, value: str | datetime | None, language: str) -> str:
    """A date and time as a person reads it (Paris time)."""
    if not value:
        return ""
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return format_datetime(moment.astimezone(PARIS), "d MMMM y 'à' HH:mm" if language == "fr" else "d MMMM y, HH:mm",
                           locale=language)


def size(value: Any, language: str) -> str:
    """A file size as people read it: "12 Ko", "3,4 Mo"."""
    try:
        n = float(int(value))
    except (TypeError, ValueError):
        return ""
    unit = "o" if language == "fr" else "B"
    if n < 1024:
        return f"{int(n)} {unit}"
    for prefix in ("K", "M", "G"):
        n /= 1024
        if n < 1024 or prefix == "G":
            break
    text = f"{n:.1f}"
    return f"{text.replace('.', ',') if language == 'fr' else text} {prefix}{unit}"


def _name(user: Any) -> str:
    if isinstance(user, dict):
        return str(user.get("name") or user.get("id") or "?")
    return str(user or "?")


SENTENCES = {
    "TicketSubmitted": N_("{actor} a créé la demande."),
    "TicketRouted": N_("La demande a été orientée vers le service {department}."),
    "TicketAssigned": N_("{assignee} est chargé(e) de la demande."),
    "TicketTaken": N_("{actor} a pris en charge la demande."),
    "TicketTakenOver": N_("{actor} a repris la demande de {previous}."),
    "TicketReleased": N_("La demande n'est plus prise en charge par {previous}."),
    "CommentAdded": N_("{actor} a ajouté un commentaire."),
    "InternalComment": N_("{actor} a ajouté un commentaire interne."),
    "InformationRequested": N_("{actor} a demandé un complément d'information."),
    "InformationProvided": N_("{actor} a répondu à la demande d'information."),
    "TicketPostponed": N_("{actor} a reporté la demande."),
    "TicketPostponedUntil": N_("{actor} a reporté la demande jusqu'au {until}."),
    "TicketResumed": N_("{actor} a repris le traitement de la demande."),
    "TicketResumedAutomatic": N_("Le traitement de la demande a repris à la date prévue."),
    "ClosureRequested": N_("{actor} a proposé de clôturer la demande."),
    "ClosureApproved": N_("{actor} a approuvé la clôture."),
    "ClosureApprovedRated": N_("{actor} a approuvé la clôture (note : {rating}/5)."),
    "ClosureRefused": N_("{actor} a refusé la clôture."),
    "ClosureExpired": N_("La demande a été clôturée automatiquement, faute de réponse."),
    "TicketClosedByOwner": N_("{actor} a clôturé la demande."),
    "TicketCancelled": N_("{actor} a annulé la demande."),
    "TicketRefused": N_("{actor} a refusé la demande."),
    "TicketReopened": N_("{actor} a ré-ouvert la demande."),
    "TicketMoved": N_("{actor} a déplacé la demande vers la catégorie {category}."),
    "UserInvited": N_("{actor} a invité {user}."),
    "InvitationRevoked": N_("{actor} a retiré l'invitation de {user}."),
    "WatchStarted": N_("{user} surveille la demande."),
    "WatchStopped": N_("{user} ne surveille plus la demande."),
    "AttachmentAdded": N_("{actor} a joint le fichier {filename}."),
    "AttachmentRemoved": N_("{actor} a retiré un fichier."),
    "SubjectChanged": N_("{actor} a changé le sujet : « {subject} »."),
    "PriorityChanged": N_("{actor} a changé la priorité : {priority}."),
    "EscalationRequested": N_("{actor} a demandé la transmission au support."),
    "EscalationRefused": N_("La transmission au support a été refusée."),
    "TicketEscalated": N_("La demande a été transmise au support."),
    "TicketReturnedToReferent": N_("Le support a renvoyé la demande au référent."),
}
UNKNOWN = N_("{actor} : {type}.")

ROLES = {"requester": N_("demandeur"), "invitee": N_("invité(e)"), "referent": N_("référent"),
         "support": N_("support"), "manager": N_("gestionnaire")}
# The events whose author the thread names by role (who wrote each message).
AUTHORED = {"CommentAdded", "InformationRequested", "InformationProvided", "ClosureRequested",
            "ClosureRefused", "EscalationRequested", "TicketReturnedToReferent", "TicketRefused"}


def roles(history: list[dict[str, Any]], ticket: dict[str, Any]) -> list[str | None]:
    """Per history event, the role of its author in the thread (``ROLES``' French text),
    for the messages people write: the requester, an invitee, a referent, the central
    support, or a manager. A ticket escalated to the support tells the two teams apart by
    the team in charge when each wrote (a referent keeps their role after the escalation)."""
    requester = (ticket.get("requester") or {}).get("id")
    invitees = {(u or {}).get("id") for u in ticket.get("invitees") or []}
    escalated_from = {(e.get("data") or {}).get("referent_department_id") for e in history
                      if e.get("type") == "TicketEscalated"}
    department: str | None = None
    referents: set[str] = set()
    found: list[str | None] = []
    for event in history:
        data = event.get("data") or {}
        kind = event.get("type")
        actor = event.get("actor") or {}
        who = actor.get("id")
        role: str | None = None
        if kind in AUTHORED and actor.get("kind") != "system" and who:
            if who == requester:
                role = "requester"
            elif who in invitees:
                role = "invitee"
            elif who in referents or (department in escalated_from and department is not None):
                role = "referent"
                referents.add(who)
            elif escalated_from - {None}:
                role = "support"
            else:
                role = "manager"
        if kind in ("TicketRouted", "TicketEscalated", "TicketReturnedToReferent", "TicketMoved") and \
                data.get("department_id"):
            department = data["department_id"]
        found.append(ROLES[role] if role else None)
    return found


def history_entry(tr: Translations, event: dict[str, Any], language: str,
                  labels: dict[str, str]) -> dict[str, Any]:
    """One event of ``GET /tickets/{id}/history`` as a sentence, its author, its time and
    what it carried (a comment's text, a question, a justification...)."""
    kind = str(event.get("type", ""))
    data = event.get("data") or {}
    actor = event.get("actor") or {}
    system = actor.get("kind") == "system"
    author = tr.gettext("Guichet (automatique)") if system else _name(actor)
    key = kind
    detail: Markup | str | None = None
    if kind == "TicketAssigned":
        previous = data.get("previous_assignee")
        key = "TicketTakenOver" if data.get("taken") and previous else "TicketTaken" if data.get("taken") else kind
    elif kind == "CommentAdded":
        key = "InternalComment" if data.get("visibility") == "internal" else kind
        detail = richtext.render(data.get("body"))
    elif kind == "TicketPostponed":
        key = "TicketPostponedUntil" if data.get("until") else kind
        detail = data.get("reason")
    elif kind == "TicketResumed" and data.get("automatic"):
        key = "TicketResumedAutomatic"
    elif kind == "ClosureApproved":
        key = "ClosureApprovedRated" if data.get("rating") else kind
        detail = data.get("feedback")
    elif kind in ("InformationRequested",):
        detail = data.get("question")
    elif kind == "ClosureRequested":
        detail = richtext.render(data.get("resolution"))
    elif kind == "ClosureRefused":
        detail = data.get("justification")
    elif kind in ("TicketCancelled", "TicketRefused", "TicketReopened", "EscalationRequested", "EscalationRefused",
                  "TicketReleased"):
        detail = data.get("reason")
    elif kind == "AttachmentRemoved":
        detail = data.get("comment")
    elif kind == "TicketReturnedToReferent":
        detail = data.get("comment")
    elif kind == "TicketSubmitted":
        detail = None
    template = SENTENCES.get(key, UNKNOWN)
    values = {
        "actor": author, "type": kind,
        "department": labels.get(f"department:{data.get('department_id')}", data.get("department_id") or ""),
        "category": labels.get(f"category:{data.get('category_id')}", data.get("category_id") or ""),
        "assignee": _name(data.get("assignee")), "previous": _name(data.get("previous_assignee")),
        "user": _name(data.get("user")), "filename": data.get("filename", ""),
        "subject": data.get("subject", ""), "priority": priority_label(tr, data.get("priority")),
        "rating": data.get("rating", ""), "until": when(tr, data.get("until"), language),
    }
    return {
        "type": kind, "sentence": tr.gettext(template).format(**values), "author": author,
        "when": when(tr, event.get("occurred_at"), language), "at": event.get("occurred_at"),
        "detail": detail if isinstance(detail, Markup) or not detail else richtext.render(detail),
        "internal": data.get("visibility") == "internal",
    }
