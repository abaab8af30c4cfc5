"""A service's consumer of ticket events, with a dead-letter queue (routing, notifier,
escalation, attachments): ``<service>.ticket-events`` bound to ``tickets.events`` with
``#``, or with only the event types the service asks for.

The ticket events a service follows reach its durable queue ``<service>.ticket-events``.
What happens to a message depends on how its handler ends:

- it succeeded: ack;
- a transient failure (``shared.failures.is_transient``: PostgreSQL or the broker
  unreachable, a dead pooled connection, another service's transient error or timeout,
  a serialization failure): requeued after a pause that doubles while failures go on
  (up to ``TRANSIENT_PAUSE_MAX`` seconds), to be tried again; never dead-lettered;
- anything else (a body that is not JSON, an unknown event type, data its schema
  refuses, or a bug): the message can never be handled, so it goes to the dead-letter
  queue ``<service>.ticket-events.dead-letters`` with its error in the headers
  (``x-guichet-error``, ``x-guichet-error-type``), and the queue moves on. Should
  that republication fail, the message is rejected without requeue and the broker
  dead-letters it itself (the queue's ``x-dead-letter-exchange``), without the error
  text, which is then in the logs.

Operators list the dead letters (``guichet dead-letters list SERVICE``), fix the cause,
and move them back (``guichet dead-letters replay SERVICE``) to be handled again; every
consumer skips those it had already handled.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import eventlet
import kombu
import structlog
from nameko.messaging import Consumer

from shared.events import EXCHANGE as TICKET_EVENTS
from shared.failures import backoff, is_transient
from shared.outbox import event_exchange

log = structlog.stdlib.get_logger("guichet.consumer")

TRANSIENT_PAUSE_SECONDS = 0.5  # the first pause after a transient failure
TRANSIENT_PAUSE_MAX = 10.0


# Every service consuming ticket events, with the event types it binds (empty: all). The
# outbox relay declares these queues before it publishes (``ticket_event_topology``), so
# an event committed before a consumer first started waits in its queue instead of being
# routed to no queue and lost; a service consuming ticket events is listed here.
TICKET_EVENT_SUBSCRIPTIONS: dict[str, tuple[str, ...]] = {
    "routing": (),
    "notifier": (),
    "escalation": (),
    "attachments": ("AttachmentAdded", "AttachmentRemoved"),
    "reporting": (),
}


def ticket_event_topology() -> list[kombu.Exchange | kombu.Queue]:
    """What the relay declares before publishing ticket events: each consumer's queue
    bound to ``tickets.events``, its dead-letter exchange and its dead-letter queue."""
    entities: list[kombu.Exchange | kombu.Queue] = [event_exchange(TICKET_EVENTS)]
    for service, event_types in TICKET_EVENT_SUBSCRIPTIONS.items():
        entities += [dead_letter_exchange(service), dead_letter_queue(service), ticket_events_queue(service, event_types)]
    return entities


def dead_letter_exchange(service: str) -> kombu.Exchange:
    return kombu.Exchange(f"{service}.dead-letters", type="topic", durable=True, auto_delete=False)


def dead_letter_queue(service: str) -> kombu.Queue:
    return kombu.Queue(f"{service}.ticket-events.dead-letters", exchange=dead_letter_exchange(service),
                       routing_key="#", durable=True)


def ticket_events_queue(service: str, event_types: tuple[str, ...] = ()) -> kombu.Queue:
    """The service's queue: every ticket event, or only ``event_types`` (routing keys)."""
    exchange = event_exchange(TICKET_EVENTS)
    return kombu.Queue(
        f"{service}.ticket-events", bindings=[kombu.binding(exchange, routing_key=key) for key in event_types or ("#",)],
        durable=True, queue_arguments={"x-dead-letter-exchange": f"{service}.dead-letters"},
    )


class TicketEventConsumer(Consumer):
    """Nameko's ``consume`` entrypoint on ``<service>.ticket-events``, choosing per
    failure between requeue and the dead-letter queue (see the module's docstring)."""

    def __init__(self, service: str, event_types: tuple[str, ...] = (), **kwargs: Any) -> None:
        self.service = service
        self.failures_in_a_row = 0  # transient ones, for the backoff
        super().__init__(ticket_events_queue(service, event_types), requeue_on_error=True, **kwargs)

    def setup(self) -> None:
        listed = TICKET_EVENT_SUBSCRIPTIONS.get(self.service)
        if listed is None or set(listed) != {b.routing_key for b in self.queue.bindings} - {"#"}:
            raise ValueError(
                f"{self.service}'s ticket events ({sorted(b.routing_key for b in self.queue.bindings)}) must be the ones"
                " listed in shared.consumer.TICKET_EVENT_SUBSCRIPTIONS, which the outbox relay declares"
            )
        # A body that cannot even be decoded never reaches a worker: dead-letter it too,
        # instead of letting kombu raise in the consumer loop forever.
        self.consumer_options["on_decode_error"] = self.on_decode_error
        super().setup()
        with kombu.Connection(self.amqp_uri) as connection:
            channel = connection.default_channel
            dead_letter_exchange(self.service)(channel).declare()
            dead_letter_queue(self.service)(channel).declare()

    def handle_message_processed(self, message: Any, result: Any = None, exc_info: Any = None) -> None:
        if exc_info is None:
            self.failures_in_a_row = 0
            self.consumer.ack_message(message)
        elif is_transient(exc_info[1]):
            self.failures_in_a_row += 1
            pause = backoff(self.failures_in_a_row, TRANSIENT_PAUSE_SECONDS, TRANSIENT_PAUSE_MAX)
            log.warning("transient failure, message requeued", error=str(exc_info[1]),
                        error_type=exc_info[0].__name__, retry_in=pause)
            eventlet.sleep(pause)  # do not spin while a server is down
            self.consumer.requeue_message(message)
        else:
            self.dead_letter(message, exc_info[1])

    def on_decode_error(self, message: Any, exc: BaseException) -> None:
        self.dead_letter(message, exc)

    def dead_letter(self, message: Any, error: BaseException) -> None:
        """Move ``message`` to the dead-letter queue with its error, then ack it."""
        routing_key = (message.delivery_info or {}).get("routing_key") or "unknown"
        headers = {
            **(message.headers or {}),
            "x-guichet-error": str(error)[:4000] or type(error).__name__,
            "x-guichet-error-type": type(error).__name__,
            "x-guichet-consumer": self.container.service_name,
            "x-guichet-failed-at": datetime.now(UTC).isoformat(),
            "x-original-routing-key": routing_key,
        }
        log.error("message dead-lettered", routing_key=routing_key, error=str(error),
                  error_type=type(error).__name__, message_id=(message.properties or {}).get("message_id"))
        try:
            with kombu.Connection(self.amqp_uri, transport_options={"confirm_publish": True}) as connection:
                connection.Producer().publish(
                    message.body, exchange=dead_letter_exchange(self.service), routing_key=routing_key, headers=headers,
                    content_type=message.content_type or "application/octet-stream",
                    content_encoding=message.content_encoding or "binary", delivery_mode=2,
                    message_id=(message.properties or {}).get("message_id"), declare=[dead_letter_queue(self.service)],
                    retry=True, retry_policy={"max_retries": 3},
                )
        except Exception as exc:  # noqa: BLE001 - the broker's own dead-lettering is the fallback
            log.error("could not publish the dead letter: rejecting instead", error=str(exc))
            if message.channel.connection:
                message.reject(requeue=False)
            return
        self.consumer.ack_message(message)


consume_ticket_events = TicketEventConsumer.decorator
