"""The NATS transport against a real server (127.0.0.1:4222): the shared behaviour checks
from test_memory_transport.py, plus connecting to a dead server."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from cascade.errors import Unavailable
from cascade.fabric.transports.nats import NatsTransport, server_list
from tests.conftest import require_service
from tests.fabric.test_memory_transport import CHECKS, Check, Inbox

pytestmark = pytest.mark.nats


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_nats_behaviour(check: Check) -> None:
    require_service("NATS", 4222)

    async def run() -> None:
        bus = await NatsTransport.connect(name="cascade-test")
        try:
            await check(bus, f"test.{uuid.uuid4().hex}")
        finally:
            await bus.close()

    asyncio.run(run())


def test_messages_cross_connections_and_close_is_final() -> None:
    require_service("NATS", 4222)
    prefix = f"test.{uuid.uuid4().hex}"

    async def run() -> None:
        sender = await NatsTransport.connect()
        try:
            receiver = await NatsTransport.connect()
            try:
                box = Inbox()
                await receiver.subscribe(f"{prefix}.a", box)
                await receiver.flush()
                await sender.publish(f"{prefix}.a", b"over the wire")
                for _ in range(500):
                    if box.got:
                        break
                    await asyncio.sleep(0.01)
                assert [m.data for m in box.got] == [b"over the wire"]
            finally:
                await receiver.close()
            await receiver.close()  # idempotent
            with pytest.raises(Unavailable):
                await receiver.publish(f"{prefix}.a", b"late")
        finally:
            await sender.close()

    asyncio.run(run())


def test_connect_to_closed_port_is_unavailable_quickly() -> None:
    async def run() -> None:
        started = time.monotonic()
        with pytest.raises(Unavailable, match=r"nats://127\.0\.0\.1:1\b"):
            await NatsTransport.connect("nats://127.0.0.1:1")
        assert time.monotonic() - started < 3

    asyncio.run(run())


def test_several_servers_comma_separated_or_listed() -> None:
    assert server_list(" nats://a:1, nats://b:2 ,") == ["nats://a:1", "nats://b:2"]
    assert server_list(["nats://a:1"]) == ["nats://a:1"]
    with pytest.raises(Unavailable, match="no NATS server"):
        server_list(" , ")


def test_connect_when_no_server_answers_names_them_all() -> None:
    async def run() -> None:
        started = time.monotonic()
        with pytest.raises(Unavailable, match=r"127\.0\.0\.1:1,nats://127\.0\.0\.1:2\b"):
            await NatsTransport.connect("nats://127.0.0.1:1,nats://127.0.0.1:2")
        assert time.monotonic() - started < 5

    asyncio.run(run())
