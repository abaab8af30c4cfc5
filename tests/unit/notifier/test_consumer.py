"""How the notifier's consumer ends each message: ack, requeue (transient failure) or
the dead-letter queue (a message it can never handle)."""

import sys

import psycopg
import pytest

from services.notifier.notifications import PoisonMessage
from shared import consumer as consumer_module
from shared.consumer import TicketEventConsumer


class Recorder:
    def __init__(self):
        self.calls = []

    def ack_message(self, message):
        self.calls.append(("ack", message))

    def requeue_message(self, message):
        self.calls.append(("requeue", message))


@pytest.fixture
def entrypoint(monkeypatch):
    monkeypatch.setattr(consumer_module, "TRANSIENT_PAUSE_SECONDS", 0)
    entrypoint = TicketEventConsumer("notifier")
    entrypoint.consumer = Recorder()
    entrypoint.dead_letter = lambda message, error: entrypoint.consumer.calls.append(("dead", message, str(error)))
    return entrypoint


def exc_info(error):
    try:
        raise error
    except Exception:
        return sys.exc_info()


def test_success_is_acked(entrypoint):
    entrypoint.handle_message_processed("m")
    assert entrypoint.consumer.calls == [("ack", "m")]


@pytest.mark.parametrize("error", [psycopg.OperationalError("server closed the connection"),
                                   psycopg.errors.SerializationFailure("retry"), ConnectionResetError()])
def test_transient_failures_are_requeued(entrypoint, error):
    entrypoint.handle_message_processed("m", exc_info=exc_info(error))
    assert entrypoint.consumer.calls == [("requeue", "m")]


@pytest.mark.parametrize("error", [PoisonMessage("unknown event type X"), KeyError("bug")])
def test_everything_else_is_dead_lettered(entrypoint, error):
    entrypoint.handle_message_processed("m", exc_info=exc_info(error))
    assert entrypoint.consumer.calls == [("dead", "m", str(error))]
