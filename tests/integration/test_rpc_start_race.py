"""``shared.nameko_deps.ServiceRpc``: a call made before the reply listener's first
connection must not kill the service, and the reply queue is not declared again before
every call.

Nameko checks for lost replies on every connection of its reply listener, the first one
included; a worker that starts with the container (a timer, a waiting event) can register
a call before it, while the reply queue does not exist yet. Stock Nameko then kills the
listener's thread and ``container.start()`` never returns: the escalation service hung
that way when restarted with a recall already due. ``shared.nameko_deps.ServiceRpc``
skips the check on the first connection only.
"""

from __future__ import annotations

import eventlet
import pytest
from nameko import rpc as nameko_rpc
from nameko.rpc import rpc

from shared import nameko_deps


class Echo:
    name = "echo"

    @rpc
    def say(self, words: str) -> str:
        return words


class Caller:
    name = "caller"
    echo = nameko_deps.ServiceRpc("echo")

    @rpc
    def relay(self, words: str) -> str:
        return self.echo.say(words)


class StockCaller:
    name = "stock_caller"
    echo = nameko_rpc.ServiceRpc("echo")


def register_a_call_before_connecting(monkeypatch, listener_cls) -> None:
    """What a worker started with the container does: a call registered as soon as the
    listener is set up, before its consumer has connected."""
    setup = listener_cls.setup

    def setup_then_call(self):
        setup(self)
        self.register_for_reply("call-made-at-start")

    monkeypatch.setattr(listener_cls, "setup", setup_then_call)


def test_a_call_registered_before_the_first_connection_does_not_stop_the_start(
    container_factory, broker_uri, monkeypatch
):
    container_factory(Echo, {"AMQP_URI": broker_uri}).start()
    register_a_call_before_connecting(monkeypatch, nameko_deps._ReplyListener)
    caller = container_factory(Caller, {"AMQP_URI": broker_uri})
    with eventlet.Timeout(15):
        caller.start()
    from nameko.standalone.rpc import ServiceRpcClient

    with ServiceRpcClient("caller", timeout=15) as client:
        assert client.relay("bonjour") == "bonjour"


def test_stock_nameko_never_finishes_starting_in_that_case(container_factory, broker_uri, monkeypatch):
    """The same situation with Nameko's own listener: the reason for ours."""
    register_a_call_before_connecting(monkeypatch, nameko_rpc.ReplyListener)
    caller = container_factory(StockCaller, {"AMQP_URI": broker_uri})
    with pytest.raises(eventlet.Timeout), eventlet.Timeout(5):
        caller.start()


def test_the_reply_queue_is_declared_once_per_connection_not_before_every_call(
    container_factory, broker_uri, monkeypatch
):
    declared: list[str] = []
    declare = nameko_deps._ReplyQueue.declare

    def counting(self, *args, **kwargs):
        declared.append(self.name)
        return declare(self, *args, **kwargs)

    monkeypatch.setattr(nameko_deps._ReplyQueue, "declare", counting)
    container_factory(Echo, {"AMQP_URI": broker_uri}).start()
    container_factory(Caller, {"AMQP_URI": broker_uri}).start()
    from nameko.standalone.rpc import ServiceRpcClient

    with ServiceRpcClient("caller", timeout=15) as client:
        for n in range(20):
            assert client.relay(f"n°{n}") == f"n°{n}"
    # the listener's own, and the first call on each pooled connection (it was before each of the 20)
    assert 1 <= len(declared) <= 6
