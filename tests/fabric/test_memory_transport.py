"""The in-process transport: NATS subject and queue-group semantics, plus fault injection."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from cascade.errors import BadRequest, Unavailable
from cascade.fabric.transports.base import Message, subject_matches
from cascade.fabric.transports.memory import MemoryTransport


@pytest.mark.parametrize(
    ("pattern", "subject", "expected"),
    [
        ("a.b.c", "a.b.c", True),
        ("a.b.c", "a.b", False),
        ("a.b", "a.b.c", False),
        ("a.*.c", "a.x.c", True),
        ("a.*.c", "a.x.y.c", False),
        ("a.*", "a", False),
        ("*", "a", True),
        ("*", "a.b", False),
        ("a.>", "a.b", True),
        ("a.>", "a.b.c.d", True),
        ("a.>", "a", False),
        (">", "a.b", True),
        ("*.b.>", "x.b.c", True),
        ("*.b.>", "x.c.d", False),
        ("cascade.fabric.net.*", "cascade.fabric.net.n1", True),
        ("cascade.fabric.p.1", "cascade.fabric.p.10", False),
    ],
)
def test_subject_matching(pattern: str, subject: str, expected: bool) -> None:
    assert subject_matches(pattern, subject) is expected


class Inbox:
    def __init__(self) -> None:
        self.got: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.got.append(message)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_plain_subscribers_all_receive() -> None:
    async def run() -> None:
        bus = MemoryTransport()
        boxes = [Inbox() for _ in range(3)]
        await bus.subscribe("x.a", boxes[0])
        await bus.subscribe("x.*", boxes[1])
        await bus.subscribe("x.>", boxes[2])
        other = Inbox()
        await bus.subscribe("y.a", other)
        await bus.publish("x.a", b"hi")
        await settle()
        assert [b.got for b in boxes] == [[Message("x.a", b"hi")]] * 3
        assert other.got == []
        await bus.close()

    asyncio.run(run())


def test_queue_group_delivers_each_message_once() -> None:
    async def run() -> None:
        bus = MemoryTransport()
        members = [Inbox() for _ in range(3)]
        for box in members:
            await bus.subscribe("cascade.fabric.shared.sg", box, queue="workers")
        watcher = Inbox()
        await bus.subscribe("cascade.fabric.shared.>", watcher)
        for i in range(300):
            await bus.publish("cascade.fabric.shared.sg", str(i).encode())
        await settle()
        seen = Counter(m.data for box in members for m in box.got)
        assert len(seen) == 300
        assert set(seen.values()) == {1}
        assert all(box.got for box in members)
        assert len(watcher.got) == 300
        await bus.close()

    asyncio.run(run())


def test_unsubscribe_stops_delivery() -> None:
    async def run() -> None:
        bus = MemoryTransport()
        box = Inbox()
        sub = await bus.subscribe("a", box)
        await bus.publish("a", b"1")
        await settle()
        await sub.unsubscribe()
        await bus.publish("a", b"2")
        await settle()
        assert [m.data for m in box.got] == [b"1"]
        await bus.close()

    asyncio.run(run())


def test_order_is_kept_per_subscriber() -> None:
    async def run() -> None:
        bus = MemoryTransport()
        boxes = [Inbox(), Inbox()]
        for box in boxes:
            await bus.subscribe("a.*", box)
        sent = [str(i).encode() for i in range(500)]
        for data in sent:
            await bus.publish("a.b", data)
        await settle()
        assert [[m.data for m in box.got] for box in boxes] == [sent, sent]
        await bus.close()

    asyncio.run(run())


def test_reorder_keeps_every_message() -> None:
    async def run() -> None:
        bus = MemoryTransport(reorder=True, seed=1)
        box = Inbox()
        await bus.subscribe("a", box)
        sent = [str(i).encode() for i in range(100)]
        for data in sent:
            await bus.publish("a", data)
        await settle()
        got = [m.data for m in box.got]
        assert sorted(got) == sorted(sent)
        assert got != sent
        await bus.close()

    asyncio.run(run())


def test_drop_rate_one_drops_everything() -> None:
    async def run() -> None:
        bus = MemoryTransport(drop_rate=1.0, seed=7)
        box = Inbox()
        await bus.subscribe("a", box)
        await bus.subscribe("a", box, queue="q")
        for _ in range(50):
            await bus.publish("a", b"x")
        await settle()
        assert box.got == []
        await bus.close()

    asyncio.run(run())


def test_close_stops_delivery_tasks() -> None:
    async def run() -> None:
        bus = MemoryTransport()
        for i in range(10):
            await bus.subscribe(f"a.{i}", Inbox(), queue="q" if i % 2 else None)
        assert len(asyncio.all_tasks()) == 11
        await bus.close()
        assert asyncio.all_tasks() == {asyncio.current_task()}
        with pytest.raises(Unavailable):
            await bus.publish("a.1", b"x")

    asyncio.run(run())


def test_handler_may_unsubscribe_itself_and_errors_do_not_kill_delivery() -> None:
    async def run() -> None:
        bus = MemoryTransport()
        calls: list[bytes] = []

        async def handler(message: Message) -> None:
            calls.append(message.data)
            if message.data == b"boom":
                raise RuntimeError("handler bug")
            if message.data == b"stop":
                await sub.unsubscribe()

        sub = await bus.subscribe("a", handler)
        for data in (b"boom", b"ok", b"stop", b"late"):
            await bus.publish("a", data)
        await settle()
        assert calls == [b"boom", b"ok", b"stop"]
        await bus.close()
        assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(run())


@pytest.mark.parametrize("subject", ["", "a..b", "a.*", "a.>", "a b"])
def test_publish_rejects_bad_subjects(subject: str) -> None:
    async def run() -> None:
        bus = MemoryTransport()
        with pytest.raises(BadRequest):
            await bus.publish(subject, b"x")
        with pytest.raises(BadRequest):
            await bus.subscribe("a.>.b", Inbox())
        await bus.close()

    asyncio.run(run())
