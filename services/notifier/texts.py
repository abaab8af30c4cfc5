"""What the notifier says about each event, in French (English through the gettext
catalogue of ``shared/locale``): the end of the email
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
from shared.i18n import LANGUAGES, N_, gettext

SYSTEM_NAME = "Guichet"

# (event type, role) or event type -> (what happened, summary, intro), in French: the
# gettext msgids of shared/locale, where the English is. Placeholders: actor, number,
# subject, team, category, assignee, filename.
_TEXTS: dict[Any, tuple[str, str, str]] = {
    "TicketSubmitted": (
        N_("Demande enregistrée"),
        N_("Votre demande est enregistrée sous le n°{number}"),
        N_("Votre demande « {subject} » est enregistrée sous le n°{number}. Nous vous tiendrons informé(e) "
           "de son traitement."),
    ),
    "TicketRouted": (
        N_("Nouvelle demande pour {team}"),
        N_("Nouvelle demande pour {team}"),
        N_("Une nouvelle demande attend d'être prise en charge par {team}."),
    ),
    ("TicketRouted", "moved"): (
        N_("Demande transférée à {team}"),
        N_("Demande transférée à {team}"),
        N_("La demande a été transférée à {team}."),
    ),
    ("TicketAssigned", "assignee"): (
        N_("Demande qui vous est attribuée"),
        N_("{actor} vous a attribué la demande"),
        N_("{actor} vous a attribué cette demande."),
    ),
    ("TicketAssigned", "requester"): (
        N_("Demande prise en charge"),
        N_("Votre demande est prise en charge par {assignee}"),
        N_("Votre demande est prise en charge par {assignee}."),
    ),
    ("TicketAssigned", "former_assignee"): (
        N_("Demande reprise par {assignee}"),
        N_("La demande est désormais suivie par {assignee}"),
        N_("Cette demande, qui vous était attribuée, est désormais suivie par {assignee}."),
    ),
    ("TicketReleased", "manager"): (
        N_("Demande de nouveau libre"),
        N_("La demande est de nouveau libre"),
        N_("Plus personne ne traite cette demande : elle attend d'être prise en charge par {team}."),
    ),
    "TicketReleased": (
        N_("Demande retirée"),
        N_("{actor} vous a retiré la demande"),
        N_("{actor} vous a retiré cette demande."),
    ),
    "CommentAdded": (
        N_("Nouveau commentaire"),
        N_("{actor} a commenté la demande"),
        N_("{actor} a ajouté un commentaire."),
    ),
    ("CommentAdded", INTERNAL): (
        N_("Nouveau commentaire interne"),
        N_("{actor} a ajouté un commentaire interne"),
        N_("{actor} a ajouté un commentaire interne (visible des gestionnaires seulement)."),
    ),
    "InformationRequested": (
        N_("Demande d'information"),
        N_("{actor} vous demande une information"),
        N_("Pour avancer sur votre demande, {actor} a besoin d'une information de votre part."),
    ),
    "InformationProvided": (
        N_("Information fournie"),
        N_("{actor} a répondu à votre question"),
        N_("{actor} a répondu à votre question."),
    ),
    "TicketPostponed": (
        N_("Demande reportée"),
        N_("{actor} a reporté la demande{until}"),
        N_("{actor} a reporté le traitement de la demande{until}."),
    ),
    "TicketResumed": (
        N_("Demande reprise"),
        N_("La demande reportée reprend"),
        N_("Le traitement de la demande reportée reprend."),
    ),
    ("TicketResumed", "automatic"): (
        N_("Demande reprise"),
        N_("La demande reportée reprend"),
        N_("La date de rappel est atteinte : la demande reprend."),
    ),
    ("ClosureExpired", "requester"): (
        N_("Demande clôturée automatiquement"),
        N_("Votre demande est clôturée automatiquement"),
        N_("Sans réponse de votre part à la proposition de clôture dans le délai prévu, votre demande a été "
           "clôturée automatiquement."),
    ),
    "ClosureRequested": (
        N_("Clôture demandée"),
        N_("{actor} propose de clôturer votre demande"),
        N_("{actor} considère votre demande comme résolue et propose de la clôturer. Approuvez la clôture, "
           "ou refusez-la en expliquant ce qui manque."),
    ),
    "ClosureApproved": (
        N_("Clôture approuvée"),
        N_("{actor} a approuvé la clôture"),
        N_("{actor} a approuvé la clôture de la demande."),
    ),
    "ClosureRefused": (
        N_("Clôture refusée"),
        N_("{actor} a refusé la clôture"),
        N_("{actor} a refusé la clôture de la demande."),
    ),
    "ClosureExpired": (
        N_("Clôture automatique"),
        N_("La demande est clôturée faute de réponse"),
        N_("Le demandeur n'a ni approuvé ni refusé la clôture dans le délai : la demande est clôturée."),
    ),
    "TicketClosedByOwner": (
        N_("Demande clôturée par le demandeur"),
        N_("{actor} a clôturé sa demande"),
        N_("{actor} a clôturé sa demande."),
    ),
    "TicketCancelled": (
        N_("Demande annulée"),
        N_("{actor} a annulé sa demande"),
        N_("{actor} a annulé sa demande."),
    ),
    "TicketReopened": (
        N_("Demande réouverte"),
        N_("{actor} a réouvert la demande"),
        N_("{actor} a réouvert la demande."),
    ),
    "TicketRefused": (
        N_("Demande refusée"),
        N_("{actor} a refusé votre demande"),
        N_("{actor} a refusé votre demande."),
    ),
    "TicketMoved": (
        N_("Demande déplacée"),
        N_("{actor} a déplacé la demande vers « {category} »"),
        N_("{actor} a déplacé la demande vers la catégorie « {category} »."),
    ),
    "UserInvited": (
        N_("Invitation sur une demande"),
        N_("{actor} vous a invité(e) sur la demande"),
        N_("{actor} vous a invité(e) à suivre cette demande : vous pouvez la consulter, la commenter et y "
           "joindre des fichiers."),
    ),
    "TicketEscalated": (
        N_("Demande transmise au support"),
        N_("Demande transmise à {team}"),
        N_("La demande a été transmise à {team}."),
    ),
    "EscalationRefused": (
        N_("Transmission au support refusée"),
        N_("La transmission au support est refusée"),
        N_("La demande de transmission au support n'a pas pu aboutir."),
    ),
    "TicketReturnedToReferent": (
        N_("Demande renvoyée aux référents"),
        N_("{actor} a renvoyé la demande à {team}"),
        N_("{actor} a renvoyé la demande à {team}."),
    ),
    "AttachmentAdded": (
        N_("Nouvelle pièce jointe"),
        N_("{actor} a joint « {filename} »"),
        N_("{actor} a joint le fichier « {filename} »."),
    ),
    "AttachmentRemoved": (
        N_("Pièce jointe retirée"),
        N_("{actor} a retiré « {filename} »"),
        N_("{actor} a retiré le fichier « {filename} »."),
    ),
}

# The user text an event carries, and how to introduce it: (data field, fr label, en label,
# internal: only for those who see internal content).
_QUOTES: dict[str, tuple[str, str, bool]] = {
    "CommentAdded": ("body", N_("Commentaire"), False),
    "InformationRequested": ("question", N_("Question"), False),
    "ClosureRequested": ("resolution", N_("Résolution"), False),
    "ClosureApproved": ("feedback", N_("Avis du demandeur"), False),
    "ClosureRefused": ("justification", N_("Justification"), False),
    "TicketCancelled": ("reason", N_("Motif"), False),
    "TicketReopened": ("reason", N_("Motif"), False),
    "TicketPostponed": ("reason", N_("Motif"), False),
    "TicketRefused": ("reason", N_("Motif du refus"), False),
    "TicketReleased": ("reason", N_("Motif"), False),
    "AttachmentRemoved": ("comment", N_("Commentaire"), False),
    # A referent's reason to escalate and the support's note back are between managers.
    "TicketEscalated": ("reason", N_("Motif (interne)"), True),
    "TicketReturnedToReferent": ("comment", N_("Commentaire (interne)"), True),
    "EscalationRefused": ("reason", N_("Motif (interne)"), True),
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
        return _pick(self.teams, team_id, language, gettext(language, N_("le service")))

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
    what, summary, intro = (gettext(language, text) for text in _TEXTS[key])
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
        "filename": filename or gettext(language, N_("un fichier")),
        "until": _until(data.get("until"), language) if event_type == "TicketPostponed" else "",
    }
    quote_label, quote = None, None
    if event_type in _QUOTES:
        field_name, label, _ = _QUOTES[event_type]
        # What the recipient may see of the event: the rule the ticket's history follows.
        seen = visible_data(event_type, data, sees_internal=recipient.sees_internal, attachment_visibility="public")
        text = (seen or {}).get(field_name)
        if text:
            quote_label, quote = gettext(language, label), text
    elif event_type == "InformationProvided" and data.get("comment_id") in picture.answers:
        quote_label, quote = gettext(language, N_("Réponse")), picture.answers[data["comment_id"]]
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
