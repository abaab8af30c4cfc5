"""What the notifier says about each event, in French and English: the end of the email
subject ("WHAT HAPPENED"), the feed's one-line summary, the email's first paragraph, the
user text it quotes (a comment, the question, the resolution, a reason) and the action
links it offers. Pure: the templates in ``templates/`` lay it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.notifier.recipients import INTERNAL, Recipient, TicketPicture
from shared.events import visible_data

LANGUAGES = ("fr", "en")
SYSTEM_NAME = "Guichet"

# (event type, role) or event type -> (what happened, summary, intro), per language.
# Placeholders: actor, number, subject, team, category, assignee, filename.
_TEXTS: dict[Any, dict[str, tuple[str, str, str]]] = {
    "TicketSubmitted": {
        "fr": ("Demande enregistrée", "Votre demande est enregistrée sous le n°{number}",
               "Votre demande « {subject} » est enregistrée sous le n°{number}. Nous vous tiendrons informé(e)"
               " de son traitement."),
        "en": ("Request registered", "Your request is registered as no. {number}",
               "Your request “{subject}” is registered as no. {number}. We will keep you informed."),
    },
    "TicketRouted": {
        "fr": ("Nouvelle demande pour {team}", "Nouvelle demande pour {team}",
               "Une nouvelle demande attend d'être prise en charge par {team}."),
        "en": ("New request for {team}", "New request for {team}", "A new request awaits someone of {team}."),
    },
    ("TicketRouted", "moved"): {
        "fr": ("Demande transférée à {team}", "Demande transférée à {team}",
               "La demande a été transférée à {team}."),
        "en": ("Request moved to {team}", "Request moved to {team}", "The request was moved to {team}."),
    },
    ("TicketAssigned", "assignee"): {
        "fr": ("Demande qui vous est attribuée", "{actor} vous a attribué la demande",
               "{actor} vous a attribué cette demande."),
        "en": ("Request assigned to you", "{actor} assigned the request to you", "{actor} assigned this request to you."),
    },
    ("TicketAssigned", "requester"): {
        "fr": ("Demande prise en charge", "Votre demande est prise en charge par {assignee}",
               "Votre demande est prise en charge par {assignee}."),
        "en": ("Request taken in charge", "{assignee} is handling your request", "{assignee} is handling your request."),
    },
    ("TicketAssigned", "former_assignee"): {
        "fr": ("Demande reprise par {assignee}", "La demande est désormais suivie par {assignee}",
               "Cette demande, qui vous était attribuée, est désormais suivie par {assignee}."),
        "en": ("Request taken over by {assignee}", "{assignee} now handles the request",
               "This request, which was assigned to you, is now handled by {assignee}."),
    },
    ("TicketReleased", "manager"): {
        "fr": ("Demande de nouveau libre", "La demande est de nouveau libre",
               "Plus personne ne traite cette demande : elle attend d'être prise en charge par {team}."),
        "en": ("Request free again", "The request is free again",
               "Nobody handles this request any more: it awaits someone of {team}."),
    },
    "TicketReleased": {
        "fr": ("Demande retirée", "{actor} vous a retiré la demande", "{actor} vous a retiré cette demande."),
        "en": ("Request released", "{actor} took the request off you", "{actor} took this request off you."),
    },
    "CommentAdded": {
        "fr": ("Nouveau commentaire", "{actor} a commenté la demande", "{actor} a ajouté un commentaire."),
        "en": ("New comment", "{actor} commented on the request", "{actor} added a comment."),
    },
    ("CommentAdded", INTERNAL): {
        "fr": ("Nouveau commentaire interne", "{actor} a ajouté un commentaire interne",
               "{actor} a ajouté un commentaire interne (visible des gestionnaires seulement)."),
        "en": ("New internal comment", "{actor} added an internal comment",
               "{actor} added an internal comment (managers only)."),
    },
    "InformationRequested": {
        "fr": ("Demande d'information", "{actor} vous demande une information",
               "Pour avancer sur votre demande, {actor} a besoin d'une information de votre part."),
        "en": ("Information requested", "{actor} needs information from you",
               "To move on with your request, {actor} needs some information from you."),
    },
    "InformationProvided": {
        "fr": ("Information fournie", "{actor} a répondu à votre question", "{actor} a répondu à votre question."),
        "en": ("Information provided", "{actor} answered your question", "{actor} answered your question."),
    },
    "TicketPostponed": {
        "fr": ("Demande reportée", "{actor} a reporté la demande{until}",
               "{actor} a reporté le traitement de la demande{until}."),
        "en": ("Request postponed", "{actor} postponed the request{until}",
               "{actor} postponed work on the request{until}."),
    },
    "TicketResumed": {
        "fr": ("Demande reprise", "La demande reportée reprend", "Le traitement de la demande reportée reprend."),
        "en": ("Request resumed", "The postponed request resumes", "Work on the postponed request resumes."),
    },
    ("TicketResumed", "automatic"): {
        "fr": ("Demande reprise", "La demande reportée reprend", "La date de rappel est atteinte : la demande reprend."),
        "en": ("Request resumed", "The postponed request resumes", "The recall date has come: the request resumes."),
    },
    ("ClosureExpired", "requester"): {
        "fr": ("Demande clôturée automatiquement", "Votre demande est clôturée automatiquement",
               "Sans réponse de votre part à la proposition de clôture dans le délai prévu, votre demande a été"
               " clôturée automatiquement."),
        "en": ("Request closed automatically", "Your request was closed automatically",
               "As you did not answer the proposed closure in time, your request was closed automatically."),
    },
    "ClosureRequested": {
        "fr": ("Clôture demandée", "{actor} propose de clôturer votre demande",
               "{actor} considère votre demande comme résolue et propose de la clôturer. Approuvez la clôture,"
               " ou refusez-la en expliquant ce qui manque."),
        "en": ("Closure requested", "{actor} proposes to close your request",
               "{actor} considers your request solved and proposes to close it. Approve the closure, or refuse"
               " it and say what is missing."),
    },
    "ClosureApproved": {
        "fr": ("Clôture approuvée", "{actor} a approuvé la clôture", "{actor} a approuvé la clôture de la demande."),
        "en": ("Closure approved", "{actor} approved the closure", "{actor} approved the closure of the request."),
    },
    "ClosureRefused": {
        "fr": ("Clôture refusée", "{actor} a refusé la clôture", "{actor} a refusé la clôture de la demande."),
        "en": ("Closure refused", "{actor} refused the closure", "{actor} refused the closure of the request."),
    },
    "ClosureExpired": {
        "fr": ("Clôture automatique", "La demande est clôturée faute de réponse",
               "Le demandeur n'a ni approuvé ni refusé la clôture dans le délai : la demande est clôturée."),
        "en": ("Closed automatically", "The request was closed for lack of an answer",
               "The requester neither approved nor refused the closure in time: the request is closed."),
    },
    "TicketClosedByOwner": {
        "fr": ("Demande clôturée par le demandeur", "{actor} a clôturé sa demande", "{actor} a clôturé sa demande."),
        "en": ("Closed by the requester", "{actor} closed their request", "{actor} closed their request."),
    },
    "TicketCancelled": {
        "fr": ("Demande annulée", "{actor} a annulé sa demande", "{actor} a annulé sa demande."),
        "en": ("Request cancelled", "{actor} cancelled their request", "{actor} cancelled their request."),
    },
    "TicketReopened": {
        "fr": ("Demande réouverte", "{actor} a réouvert la demande", "{actor} a réouvert la demande."),
        "en": ("Request reopened", "{actor} reopened the request", "{actor} reopened the request."),
    },
    "TicketRefused": {
        "fr": ("Demande refusée", "{actor} a refusé votre demande", "{actor} a refusé votre demande."),
        "en": ("Request refused", "{actor} refused your request", "{actor} refused your request."),
    },
    "TicketMoved": {
        "fr": ("Demande déplacée", "{actor} a déplacé la demande vers « {category} »",
               "{actor} a déplacé la demande vers la catégorie « {category} »."),
        "en": ("Request moved", "{actor} moved the request to “{category}”",
               "{actor} moved the request to the category “{category}”."),
    },
    "UserInvited": {
        "fr": ("Invitation sur une demande", "{actor} vous a invité(e) sur la demande",
               "{actor} vous a invité(e) à suivre cette demande : vous pouvez la consulter, la commenter et y"
               " joindre des fichiers."),
        "en": ("Invitation to a request", "{actor} invited you to the request",
               "{actor} invited you to this request: you may read it, comment on it and attach files."),
    },
    "TicketEscalated": {
        "fr": ("Demande transmise au support", "Demande transmise à {team}", "La demande a été transmise à {team}."),
        "en": ("Request forwarded to support", "Request forwarded to {team}", "The request was forwarded to {team}."),
    },
    "EscalationRefused": {
        "fr": ("Transmission au support refusée", "La transmission au support est refusée",
               "La demande de transmission au support n'a pas pu aboutir."),
        "en": ("Forwarding to support refused", "Forwarding to support was refused",
               "The request to forward this request to the support could not be carried out."),
    },
    "TicketReturnedToReferent": {
        "fr": ("Demande renvoyée aux référents", "{actor} a renvoyé la demande à {team}",
               "{actor} a renvoyé la demande à {team}."),
        "en": ("Request returned to the referents", "{actor} returned the request to {team}",
               "{actor} returned the request to {team}."),
    },
    "AttachmentAdded": {
        "fr": ("Nouvelle pièce jointe", "{actor} a joint « {filename} »", "{actor} a joint le fichier « {filename} »."),
        "en": ("New attachment", "{actor} attached “{filename}”", "{actor} attached the file “{filename}”."),
    },
    "AttachmentRemoved": {
        "fr": ("Pièce jointe retirée", "{actor} a retiré « {filename} »", "{actor} a retiré le fichier « {filename} »."),
        "en": ("Attachment removed", "{actor} removed “{filename}”", "{actor} removed the file “{filename}”."),
    },
}

# The user text an event carries, and how to introduce it: (data field, fr label, en label,
# internal: only for those who see internal content).
_QUOTES: dict[str, tuple[str, str, str, bool]] = {
    "CommentAdded": ("body", "Commentaire", "Comment", False),
    "InformationRequested": ("question", "Question", "Question", False),
    "ClosureRequested": ("resolution", "Résolution", "Resolution", False),
    "ClosureApproved": ("feedback", "Avis du demandeur", "The requester's feedback", False),
    "ClosureRefused": ("justification", "Justification", "Justification", False),
    "TicketCancelled": ("reason", "Motif", "Reason", False),
    "TicketReopened": ("reason", "Motif", "Reason", False),
    "TicketPostponed": ("reason", "Motif", "Reason", False),
    "TicketRefused": ("reason", "Motif du refus", "Reason for the refusal", False),
    "TicketReleased": ("reason", "Motif", "Reason", False),
    "AttachmentRemoved": ("comment", "Commentaire", "Comment", False),
    # A referent's reason to escalate and the support's note back are between managers.
    "TicketEscalated": ("reason", "Motif (interne)", "Reason (internal)", True),
    "TicketReturnedToReferent": ("comment", "Commentaire (interne)", "Comment (internal)", True),
    "EscalationRefused": ("reason", "Motif (interne)", "Reason (internal)", True),
}

# Action links, besides the link to the ticket that every email carries.
_LINKS: dict[str, tuple[str, ...]] = {
    "InformationRequested": ("answer",),
    "ClosureRequested": ("approve", "refuse"),
}


@dataclass(frozen=True)
class Labels:
    """Team and category labels from the copy of routing's catalogue: id -> (fr, en)."""

    teams: dict[str, tuple[str, str | None]]
    categories: dict[str, tuple[str, str | None]]

    def team(self, team_id: str | None, language: str) -> str:
        return _pick(self.teams, team_id, language, "le service" if language == "fr" else "the department")

    def category(self, category_id: str | None, language: str) -> str:
        return _pick(self.categories, category_id, language, category_id or "?")


def _pick(table: dict[str, tuple[str, str | None]], key: str | None, language: str, default: str) -> str:
    if key is None or key not in table:
        return key or default
    fr, en = table[key]
    return (en or fr) if language == "en" else fr


@dataclass(frozen=True)
class Content:
    """What one recipient is told of one event, in one language."""

    what: str
    summary: str
    intro: str
    quote_label: str | None
    quote: str | None
    links: tuple[str, ...]
    rating: int | None = None


def describe(
    event_type: str,
    data: dict[str, Any],
    actor: dict[str, Any],
    picture: TicketPicture,
    recipient: Recipient,
    language: str,
    labels: Labels,
) -> Content:
    """The words for ``recipient`` about one event (French unless ``language`` is en)."""
    language = language if language in LANGUAGES else "fr"
    key: Any = event_type
    if event_type == "TicketRouted" and data.get("previous_department_id") is not None:
        key = ("TicketRouted", "moved")
    elif event_type == "TicketAssigned":
        key = ("TicketAssigned", recipient.role if recipient.role in ("assignee", "former_assignee") else "requester")
    elif event_type == "TicketResumed" and data.get("automatic"):
        key = ("TicketResumed", "automatic")
    elif event_type == "ClosureExpired" and recipient.role == "requester":
        key = ("ClosureExpired", "requester")
    elif event_type == "TicketReleased" and recipient.role == "manager":
        key = ("TicketReleased", "manager")
    elif event_type == "CommentAdded" and data.get("visibility") == INTERNAL:
        key = ("CommentAdded", INTERNAL)
    what, summary, intro = _TEXTS[key][language]
    team = {
        "TicketEscalated": data.get("department_id"),
        "TicketReturnedToReferent": data.get("department_id"),
    }.get(event_type, picture.department_id)
    filename = data.get("filename") or picture.attachments.get(data.get("attachment_id", ""), {}).get("filename")
    values = {
        "actor": actor_name(actor),
        "number": picture.number,
        "subject": picture.subject,
        "team": labels.team(team, language),
        "category": labels.category(data.get("category_id"), language),
        "assignee": (picture.assignee.name or picture.assignee.id) if picture.assignee else "?",
        "filename": filename or ("un fichier" if language == "fr" else "a file"),
        "until": _until(data.get("until"), language) if event_type == "TicketPostponed" else "",
    }
    quote_label, quote = None, None
    if event_type in _QUOTES:
        field_name, label_fr, label_en, _ = _QUOTES[event_type]
        # What the recipient may see of the event: the rule the ticket's history follows.
        seen = visible_data(event_type, data, sees_internal=recipient.sees_internal, attachment_visibility="public")
        text = (seen or {}).get(field_name)
        if text:
            quote_label, quote = (label_en if language == "en" else label_fr), text
    elif event_type == "InformationProvided" and data.get("comment_id") in picture.answers:
        quote_label, quote = ("Answer" if language == "en" else "Réponse"), picture.answers[data["comment_id"]]
    return Content(
        what=what.format(**values),
        summary=summary.format(**values),
        intro=intro.format(**values),
        quote_label=quote_label,
        quote=quote,
        links=_LINKS.get(event_type, ()),
        rating=data.get("rating") if event_type == "ClosureApproved" else None,
    )


def _until(value: Any, language: str) -> str:
    """" jusqu'au 12/03/2027 à 09:00 (UTC)" for a postponement with a recall date."""
    if value is None:
        return ""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    if language == "en":
        return f" until {when:%Y-%m-%d %H:%M} ({when.tzname()})"
    return f" jusqu'au {when:%d/%m/%Y à %H:%M} ({when.tzname()})"


def actor_name(actor: dict[str, Any]) -> str:
    """How an actor is named to people: their name, else their login; services as Guichet."""
    if actor.get("kind") == "system":
        return SYSTEM_NAME
    return actor.get("name") or actor.get("id") or SYSTEM_NAME
