"""Operators' view of the dead-letter queues ``<service>.ticket-events.dead-letters``
(``guichet dead-letters list|replay SERVICE``).

``peek`` reads the letters without taking them: each is fetched unacknowledged and
every one is handed back to the queue when done. ``replay`` moves each letter back to
the service's own queue ``<service>.ticket-events`` (through the default exchange, so
no other service receives it a second time), with publisher confirms, and only then
acks it in the dead-letter queue: a letter is never lost, at worst (the command killed
in between) it is both replayed and still a letter, and the consumer, idempotent,
handles it once. Only the letters present when the command starts are replayed: one
that fails again goes back to the dead-letter queue and is not replayed in a loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import kombu

from shared.consumer import TICKET_EVENT_SUBSCRIPTIONS

ERROR_HEADERS = ("x-guichet-error", "x-guichet-error-type", "x-guichet-consumer", "x-guichet-failed-at",
                 "x-original-routing-key", "x-death", "x-first-death-exchange", "x-first-death-queue",
                 "x-first-death-reason", "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason")


def consumers() -> set[str]:
    """The services that have a dead-letter queue."""
    return set(TICKET_EVENT_SUBSCRIPTIONS)


def _queue_names(service: str) -> tuple[str, str]:
    return f"{service}.ticket-events.dead-letters", f"{service}.ticket-events"


def _describe(message: Any) -> dict[str, Any]:
    headers = dict(message.headers or {})
    try:
        body = message.decode() if message.content_type == "application/json" else None
    except Exception:  # noqa: BLE001 - an unreadable body is what some letters are
        body = None
    raw = message.body if isinstance(message.body, bytes | str) else b""
    return {
        "message_id": (message.properties or {}).get("message_id"),
        "routing_key": headers.get("x-original-routing-key") or (message.delivery_info or {}).get("routing_key"),
        "event_type": body.get("event_type") if isinstance(body, dict) else None,
        "event_id": body.get("event_id") if isinstance(body, dict) else None,
        "error_type": headers.get("x-guichet-error-type")
        or (headers.get("x-first-death-reason") and f"broker: {headers['x-first-death-reason']}"),
        "error": headers.get("x-guichet-error"),
        "failed_at": headers.get("x-guichet-failed-at"),
        "body": body if body is not None else (raw.decode(errors="replace") if isinstance(raw, bytes) else raw)[:2000],
    }


def peek(amqp_uri: str, service: str, limit: int | None = None) -> Iterator[dict[str, Any]]:
    """Each dead letter of ``service`` (oldest first), described; all stay queued."""
    dead, _ = _queue_names(service)
    with kombu.Connection(amqp_uri) as connection:
        channel = connection.channel()
        count = channel.queue_declare(dead, passive=True).message_count
        taken = []
        try:
            for _ in range(count if limit is None else min(count, limit)):
                message = channel.basic_get(dead, no_ack=False)
                if message is None:
                    break
                taken.append(message)
                yield _describe(channel.message_to_python(message))
        finally:
            for message in taken:  # handed back, in their order
                channel.basic_reject(message.delivery_tag, requeue=True)


def replay(amqp_uri: str, service: str, limit: int | None = None) -> int:
    """Move ``service``'s dead letters back to its queue; how many were moved."""
    dead, queue = _queue_names(service)
    moved = 0
    with kombu.Connection(amqp_uri, transport_options={"confirm_publish": True}) as connection:
        channel = connection.channel()
        count = channel.queue_declare(dead, passive=True).message_count
        channel.queue_declare(queue, passive=True)  # the service's queue must exist: it would be lost otherwise
        producer = kombu.Producer(connection.channel())
        for _ in range(count if limit is None else min(count, limit)):
            raw = channel.basic_get(dead, no_ack=False)
            if raw is None:
                break
            message = channel.message_to_python(raw)
            headers = {k: v for k, v in (message.headers or {}).items() if k not in ERROR_HEADERS}
            headers["x-guichet-replayed"] = True
            producer.publish(
                message.body, exchange="", routing_key=queue, headers=headers, delivery_mode=2,
                content_type=message.content_type or "application/octet-stream",
                content_encoding=message.content_encoding or "binary",
                message_id=(message.properties or {}).get("message_id"), mandatory=True,
            )
            channel.basic_ack(raw.delivery_tag)  # confirmed above: the letter may go
            moved += 1
    return moved
