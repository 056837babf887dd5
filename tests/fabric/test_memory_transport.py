"""The in-process transport: NATS subject and queue-group semantics, plus fault injection.

The ``check_*`` functions are the transport behaviour suite; test_nats_transport.py runs
them against a real NATS server as well."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest

from cascade.errors import BadRequest, Unavailable
from cascade.fabric.transports.base import Message, Transport, subject_matches
from cascade.fabric.transports.memory import SHARDS, MemoryTransport


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


Check = Callable[[Transport, str], Awaitable[None]]


class Inbox:
    def __init__(self) -> None:
        self.got: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.got.append(message)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for ``condition`` to hold, polling; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting for delivery"
        await asyncio.sleep(0.005)


async def quiet() -> None:
    """Give a message that should not arrive the time to arrive anyway."""
    await asyncio.sleep(0.1)


# Behaviour checks shared by every transport (also run against NATS in
# test_nats_transport.py). Each takes an open transport and a subject prefix unique to the
# run; the caller opens and closes the transport.


async def check_plain_subscribers_all_receive(bus: Transport, p: str) -> None:
    boxes = [Inbox() for _ in range(3)]
    await bus.subscribe(f"{p}.x.a", boxes[0])
    await bus.subscribe(f"{p}.x.*", boxes[1])
    await bus.subscribe(f"{p}.x.>", boxes[2])
    other = Inbox()
    await bus.subscribe(f"{p}.y.a", other)
    await bus.publish(f"{p}.x.a", b"hi")
    await until(lambda: all(b.got for b in boxes))
    await quiet()
    assert [b.got for b in boxes] == [[Message(f"{p}.x.a", b"hi")]] * 3
    assert other.got == []


async def check_queue_group_delivers_each_message_once(bus: Transport, p: str) -> None:
    members = [Inbox() for _ in range(3)]
    for box in members:
        await bus.subscribe(f"{p}.shared.sg", box, queue="workers")
    watcher = Inbox()
    await bus.subscribe(f"{p}.shared.>", watcher)
    for i in range(100):
        await bus.publish(f"{p}.shared.sg", str(i).encode())
    await until(lambda: sum(len(b.got) for b in members) >= 100 and len(watcher.got) >= 100)
    await quiet()
    seen = Counter(m.data for box in members for m in box.got)
    assert len(seen) == 100
    assert set(seen.values()) == {1}
    assert all(box.got for box in members)
    assert len(watcher.got) == 100


async def check_wildcards(bus: Transport, p: str) -> None:
    star, tail = Inbox(), Inbox()
    await bus.subscribe(f"{p}.net.*", star)
    await bus.subscribe(f"{p}.>", tail)
    for subject in (f"{p}.net.n1", f"{p}.net.n1.deep", f"{p}.p.7", f"{p}x.net.n1"):
        await bus.publish(subject, b"m")
    await until(lambda: len(tail.got) >= 3 and len(star.got) >= 1)
    await quiet()
    assert [m.subject for m in star.got] == [f"{p}.net.n1"]
    assert sorted(m.subject for m in tail.got) == sorted(
        [f"{p}.net.n1", f"{p}.net.n1.deep", f"{p}.p.7"]
    )


async def check_unsubscribe_stops_delivery(bus: Transport, p: str) -> None:
    box, marker = Inbox(), Inbox()
    sub = await bus.subscribe(f"{p}.a", box)
    await bus.subscribe(f"{p}.a", marker)
    await bus.publish(f"{p}.a", b"1")
    await until(lambda: bool(box.got) and bool(marker.got))
    await sub.unsubscribe()
    await sub.unsubscribe()  # idempotent
    await bus.publish(f"{p}.a", b"2")
    await until(lambda: len(marker.got) == 2)
    await quiet()
    assert [m.data for m in box.got] == [b"1"]


async def check_order_is_kept_per_subscriber(bus: Transport, p: str) -> None:
    boxes = [Inbox(), Inbox()]
    for box in boxes:
        await bus.subscribe(f"{p}.a.*", box)
    sent = [str(i).encode() for i in range(500)]
    for data in sent:
        await bus.publish(f"{p}.a.b", data)
    await until(lambda: all(len(b.got) >= len(sent) for b in boxes))
    assert [[m.data for m in box.got] for box in boxes] == [sent, sent]


async def check_handler_errors_do_not_kill_delivery(bus: Transport, p: str) -> None:
    calls: list[bytes] = []

    async def handler(message: Message) -> None:
        calls.append(message.data)
        if message.data == b"boom":
            raise RuntimeError("handler bug")

    await bus.subscribe(f"{p}.a", handler)
    for data in (b"boom", b"ok"):
        await bus.publish(f"{p}.a", data)
    await until(lambda: len(calls) >= 2)
    assert calls == [b"boom", b"ok"]


async def check_bad_subjects_are_rejected(bus: Transport, p: str) -> None:
    for subject in ("", f"{p}..b", f"{p}.*", f"{p}.>", f"{p}.a b"):
        with pytest.raises(BadRequest):
            await bus.publish(subject, b"x")
    for pattern in (f"{p}.>.b", f"{p}.a*", ""):
        with pytest.raises(BadRequest):
            await bus.subscribe(pattern, Inbox())


CHECKS: list[Check] = [
    check_plain_subscribers_all_receive,
    check_queue_group_delivers_each_message_once,
    check_wildcards,
    check_unsubscribe_stops_delivery,
    check_order_is_kept_per_subscriber,
    check_handler_errors_do_not_kill_delivery,
    check_bad_subjects_are_rejected,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_memory_behaviour(check: Check) -> None:
    async def run() -> None:
        bus = MemoryTransport()
        try:
            await check(bus, "t")
        finally:
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
        for i in range(3 * SHARDS):
            await bus.subscribe(f"a.{i}", Inbox(), queue="q" if i % 2 else None)
        assert len(asyncio.all_tasks()) == 2 * SHARDS + 1  # per shard (plain, groups), not per sub
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
