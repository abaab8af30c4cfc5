"""Emails: rendered from the Jinja2 templates of ``templates/`` into one MIME message
with a plain-text part and an HTML part (user text escaped by autoescape).

The MIME message is built with the ``email`` package's classic (``compat32``) classes:
the same message as its newer ``EmailMessage`` API gives, in a tenth of the time (its
header registry parses every header it is given, which was most of the notifier's
time per email). Bodies are UTF-8 in quoted-printable, so the message is 7-bit and any
relay takes it, 8BITMIME or not; non-ASCII headers are RFC 2047 encoded words (in a
From or To, the display name only).

Threading: every email about a ticket answers the ticket's thread root
``<ticket-UUID@guichet>`` (``In-Reply-To`` and ``References``); the requester's
acknowledgement of a new ticket *is* that root. Each email's own ``Message-ID`` is derived
from its queue key (event, recipient), so a resend of the same key, after a crash at the
wrong moment, carries the same id and mail clients can recognise it.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import datetime
from email import charset as email_charset
from email.header import Header
from email.headerregistry import Address
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.notifier.recipients import Person, TicketPicture
from services.notifier.texts import Content
from shared.i18n import N_, gettext

TEMPLATES = Path(__file__).resolve().parent / "templates"
def _message_domain() -> str:
    """``MAIL_MESSAGE_ID_DOMAIN`` (the right side of every ``Message-ID``; default
    ``guichet``). Set it once: emails already sent keep the domain they were sent with,
    and replies thread on the ticket's root id, so changing it starts new threads."""
    value = os.environ.get("MAIL_MESSAGE_ID_DOMAIN", "").strip() or "guichet"
    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", value):
        raise ValueError(f"MAIL_MESSAGE_ID_DOMAIN must be a domain name, not {value!r}")
    return value


MESSAGE_DOMAIN = _message_domain()
MAX_SUBJECT_CHARS = 150

# Paths of the frontend pages the links open (under PUBLIC_URL). The approve and refuse
# pages must ask for confirmation: mail scanners open links in emails on their own.
PAGES = {
    "ticket": "/tickets/{id}",
    "answer": "/tickets/{id}/answer",
    "approve": "/tickets/{id}/approve-closure",
    "refuse": "/tickets/{id}/refuse-closure",
}

# The email's own words, in French: msgids of the catalogue in shared/locale.
WORDS = {
    "hello": N_("Bonjour"), "ticket": N_("Demande"), "colon": N_(" :"), "rating": N_("Note"),
    "ticket_link": N_("Voir la demande"), "answer": N_("Répondre à la question"),
    "approve": N_("Approuver la clôture"), "refuse": N_("Refuser la clôture"),
    "footer": N_("Ce message vous est envoyé par Guichet, le service d'assistance, parce que vous êtes concerné(e)"
                 " par cette demande. Répondre à ce message ne l'ajoute pas à la demande : utilisez le lien"
                 " ci-dessus. Vous pouvez choisir les notifications reçues par email dans vos préférences."),
}


def words_in(language: str) -> dict[str, str]:
    """The email's words in ``language``."""
    return {key: gettext(language, text) for key, text in WORDS.items()}


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")

_UTF8_QP = email_charset.Charset("utf-8")
_UTF8_QP.body_encoding = email_charset.QP
_WIRE = compat32.clone(linesep="\r\n")


class InvalidAddress(ValueError):
    """A recipient address no email can be sent to."""


def thread_root_id(ticket_id: str) -> str:
    """The ``Message-ID`` every email about the ticket refers to."""
    return f"<ticket-{ticket_id}@{MESSAGE_DOMAIN}>"


def message_id_for(event_id: str, recipient_id: str) -> str:
    """The stable ``Message-ID`` of the email of one queue key (event, recipient)."""
    digest = hashlib.sha256(recipient_id.encode()).hexdigest()[:12]
    return f"<{event_id}.{digest}@{MESSAGE_DOMAIN}>"  # short enough not to be folded


def one_line(text: str, limit: int = MAX_SUBJECT_CHARS) -> str:
    """A header-safe single line: control characters become spaces; cut at ``limit``."""
    line = " ".join(_CONTROL.sub(" ", text).split())
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def subject_line(number: int, ticket_subject: str, what: str) -> str:
    """``[Ticket n°NUMBER] SUBJECT — WHAT HAPPENED`` (the same prefix in every language,
    so clients that thread by subject keep one thread per ticket)."""
    return f"[Ticket n°{number}] {one_line(ticket_subject)} — {one_line(what)}"


def _text_part(text: str, subtype: str) -> MIMEText:
    """A UTF-8 text part in quoted-printable."""
    part = MIMEText(text, subtype, _UTF8_QP)  # type: ignore[arg-type]  # a Charset works (typeshed says str)
    del part["MIME-Version"]  # once, at the top, is enough
    return part


def _address(name: str, addr_spec: str) -> str:
    """``Name <addr>``; a name that is not ASCII becomes encoded words of at most 75
    characters each (RFC 2047), separated by spaces the header may fold at."""
    if name.isascii():
        return formataddr((name, addr_spec))
    words = Header(name, "utf-8").encode(linesep="\n", maxlinelen=70).split("\n ")
    return f"{' '.join(words)} <{addr_spec}>"


def _quoted(text: str) -> str:
    return "\n".join("> " + line if line else ">" for line in text.splitlines() or [""])


@dataclass(frozen=True)
class RenderedEmail:
    message_id: str
    to_address: str
    raw: bytes


class MailRenderer:
    """Renders emails; ``public_url`` is the base of their links, ``sender`` their From."""

    def __init__(self, public_url: str, sender: str | None = None) -> None:
        self.public_url = public_url.rstrip("/")
        host = urlsplit(self.public_url).hostname or "localhost"
        self.sender = sender or f"Guichet <noreply@{host}>"
        name, address = parseaddr(self.sender)
        if "@" not in address:
            raise ValueError(f"MAIL_FROM {self.sender!r} has no address (quote a name with a comma in it)")
        self._from_header = _address(name, address)
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters["quoted"] = _quoted

    def link(self, page: str, ticket_id: str) -> str:
        return self.public_url + PAGES[page].format(id=quote(ticket_id, safe=""))

    def render(
        self,
        *,
        event_id: str,
        event_type: str,
        occurred_at: datetime,
        ticket: TicketPicture,
        recipient: Person,
        content: Content,
        language: str,
    ) -> RenderedEmail:
        """The whole MIME message for one recipient of one event."""
        if not recipient.email:
            raise InvalidAddress(f"no address known for {recipient.id}")
        try:
            to = Address(display_name=one_line(recipient.name or "", 100), addr_spec=recipient.email.strip())
        except (ValueError, IndexError) as exc:
            raise InvalidAddress(f"{recipient.email!r}: {exc}") from None
        if not to.domain or not to.username:
            raise InvalidAddress(f"{recipient.email!r} is not an address")
        words = words_in(language)
        root = thread_root_id(ticket.id)
        is_root = event_type == "TicketSubmitted" and ticket.requester is not None and recipient.id == ticket.requester.id
        message_id = root if is_root else message_id_for(event_id, recipient.id)
        subject = subject_line(ticket.number, ticket.subject, content.what)
        links = [{"label": words["ticket_link"], "url": self.link("ticket", ticket.id)}]
        links += [{"label": words[page], "url": self.link(page, ticket.id)} for page in content.links]
        context: dict[str, Any] = {
            "t": words, "c": content, "language": language, "subject": subject, "links": links,
            "name": recipient.name or recipient.id, "number": ticket.number, "ticket_subject": ticket.subject,
        }
        message = MIMEMultipart("alternative", _subparts=[
            _text_part(self.env.get_template("email.txt").render(context), "plain"),
            _text_part(self.env.get_template("email.html").render(context), "html"),
        ])
        message["From"] = self._from_header
        message["To"] = _address(to.display_name, to.addr_spec)
        message["Subject"] = subject  # compat32 makes encoded words of non-ASCII text
        message["Date"] = format_datetime(occurred_at)
        message["Message-ID"] = message_id
        if not is_root:
            message["In-Reply-To"] = root
            message["References"] = root
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to this
        message["X-Guichet-Ticket"] = str(ticket.number)
        message["X-Guichet-Event"] = f"{event_type} {event_id}"
        message["Content-Language"] = language
        return RenderedEmail(message_id, to.addr_spec, message.as_bytes(policy=_WIRE))
