"""Turning one ticket event into feed entries and queued emails, in one transaction with
the record that the event was handled (so a redelivery changes nothing).

``parse_envelope`` refuses, as a ``PoisonMessage``, any message the notifier can never
handle (not an event envelope, an unknown event type, data its schema refuses).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from marshmallow import EXCLUDE, ValidationError

from services.notifier import recipients as rules
from services.notifier import storage
from services.notifier.mail import InvalidAddress, MailRenderer
from services.notifier.texts import LANGUAGES, describe
from shared.db import Connection
from shared.events import EventMessageSchema, TicketSummarySchema, UnknownEventType, load_data

log = structlog.stdlib.get_logger("guichet.notifier")

_ENVELOPE = EventMessageSchema(unknown=EXCLUDE)
_SUMMARY_FIELDS = set(TicketSummarySchema().fields)


class PoisonMessage(Exception):
    """A message the notifier can never handle: it goes to the dead-letter queue."""


@dataclass(frozen=True)
class Envelope:
    event_id: str
    event_type: str
    stream_version: int
    occurred_at: datetime
    actor: dict[str, Any]
    correlation_id: str | None
    data: dict[str, Any]
    ticket: dict[str, Any]
    # Who may see the ticket right after the event (None from an older tickets service).
    audience: list[dict[str, Any]] | None = None


def parse_envelope(body: Any) -> Envelope:
    """The event a message carries, validated by the shared schemas."""
    if not isinstance(body, dict):
        raise PoisonMessage(f"the body is not a JSON object but {type(body).__name__}")
    if isinstance(body.get("ticket"), dict):
        # A newer tickets service may add to the summary; read what this one knows.
        body = {**body, "ticket": {k: v for k, v in body["ticket"].items() if k in _SUMMARY_FIELDS}}
    try:
        message = _ENVELOPE.load(body)
        data = load_data(message["event_type"], message["schema_version"], message["data"])
        occurred_at = datetime.fromisoformat(message["occurred_at"])
    except ValidationError as exc:
        raise PoisonMessage(f"invalid event: {exc.messages}") from None
    except UnknownEventType as exc:
        raise PoisonMessage(f"unknown event type {exc}") from None
    except (ValueError, TypeError, KeyError) as exc:
        raise PoisonMessage(f"invalid event: {exc}") from None
    if occurred_at.tzinfo is None:
        raise PoisonMessage("occurred_at has no time zone")
    return Envelope(
        event_id=message["event_id"], event_type=message["event_type"], stream_version=message["stream_version"],
        occurred_at=occurred_at, actor=message["actor"], correlation_id=message["correlation_id"],
        data=data, ticket=message["ticket"], audience=message.get("audience"),
    )


def handle_ticket_event(conn: Connection, event: Envelope, renderer: MailRenderer) -> int | None:
    """Record the event's facts, then a feed entry per recipient and an email per
    recipient who wants one; returns how many were told, None for an event seen before."""
    ticket_id = event.ticket["id"]
    with conn.transaction():
        if not storage.first_time_locked(conn, event.event_id, ticket_id):
            log.info("event already handled", event_id=event.event_id)
            return None
        storage.record_facts(conn, ticket_id, event.stream_version,
                             rules.facts_of(event.event_type, event.data, event.ticket))
        storage.remember_people(conn, rules.people_in(event.event_type, event.data, event.ticket))
        picture = rules.TicketPicture.build(event.ticket, storage.facts_as_of(conn, ticket_id, event.stream_version))
        team_ids = {picture.department_id, picture.referent_department_id,
                    event.data.get("department_id"), event.data.get("referent_department_id")}
        assigning = storage.teams_routing_assigns(conn, [picture.department_id]) \
            if event.event_type == "TicketRouted" else set()
        if event.audience is not None:
            # The tickets service said who could see the ticket at the event: the teams'
            # managers are taken from it, never from this copy, which may be newer or older.
            audience = rules.Audience.of(event.audience)
            managers = audience.managers
        else:
            audience = None
            teams = storage.team_managers(conn, team_ids)
            managers = lambda team: teams.get(team or "", [])  # noqa: E731
        told = rules.recipients(
            event.event_type, event.data, event.actor["id"], picture,
            managers, lambda team: team in assigning, audience,
        )
        if not told:
            return 0
        ids = [r.person.id for r in told]
        known, prefs = storage.directory(conn, ids)
        labels = storage.labels(conn, team_ids, [event.data.get("category_id")])
        feed: list[storage.FeedEntry] = []
        emails: list[storage.QueuedEmail] = []
        for recipient in told:
            person = _with_directory(recipient.person, known.get(recipient.person.id))
            words = {lang: describe(event.event_type, event.data, event.actor, picture, recipient, lang, labels)
                     for lang in LANGUAGES}
            feed.append(storage.FeedEntry(
                user_id=person.id, event_id=event.event_id, ticket_id=ticket_id, ticket_number=picture.number,
                event_type=event.event_type, summary_fr=words["fr"].summary, summary_en=words["en"].summary,
                created_at=event.occurred_at,
            ))
            pref = prefs[person.id]
            if event.event_type in pref.email_off:
                continue
            try:
                email = renderer.render(
                    event_id=event.event_id, event_type=event.event_type, occurred_at=event.occurred_at,
                    ticket=picture, recipient=person, content=words[pref.language], language=pref.language,
                )
            except InvalidAddress as exc:
                log.warning("no email: no usable address", recipient=person.id, error=str(exc))
                continue
            emails.append(storage.QueuedEmail(
                event_id=event.event_id, recipient_id=person.id, ticket_id=ticket_id, ticket_number=picture.number,
                event_type=event.event_type, occurred_at=event.occurred_at, to_address=email.to_address,
                message_id=email.message_id, raw=email.raw,
            ))
        storage.add_feed_entries(conn, feed)
        queued = storage.queue_emails(conn, emails)
        if queued:
            storage.wake_sender(conn)
        log.info("event notified", event_type=event.event_type, told=ids, emails=queued)
        return len(told)


def _with_directory(person: rules.Person, known: rules.Person | None) -> rules.Person:
    """The person with the directory's latest name and address, where it has them."""
    if known is None:
        return person
    return rules.Person(person.id, known.name or person.name, known.email or person.email)
