"""The transport interface: publish bytes on a subject, subscribe a handler to a pattern.

Implementations (in-process ``memory``, NATS for production) live beside this module and
all follow NATS subject semantics:

* a subject is parts separated by ``.``; a published subject has no wildcards;
* in a subscription pattern ``*`` matches exactly one part and ``>`` (last part only)
  matches one or more trailing parts;
* every plain subscriber whose pattern matches gets every message, while a queue group
  (subscribers sharing a ``queue`` name) gets each matching message exactly once, delivered
  to one member.

A bus that can lose its connection and get it back (NATS, failing over between the nodes of
a cluster) calls the handlers given to ``on_reconnect`` once it is back: whatever was
published meanwhile may be lost, and its users resync. The in-process bus never does.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache

from cascade.errors import BadRequest


@dataclass(frozen=True)
class Message:
    subject: str
    data: bytes


Handler = Callable[[Message], Awaitable[None]]
ReconnectHandler = Callable[[], Awaitable[None]]


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether subscription ``pattern`` matches the concrete ``subject`` (NATS rules)."""
    want = pattern.split(".")
    have = subject.split(".")
    for i, part in enumerate(want):
        if part == ">":
            return len(have) > i
        if i >= len(have) or (part != "*" and part != have[i]):
            return False
    return len(want) == len(have)


@lru_cache(maxsize=65536)
def validate_subject(subject: str, *, wildcards: bool) -> str:
    """Check a subject (``wildcards=False``) or a pattern; raise ``BadRequest`` if invalid.

    Cached: agents publish to the same few subjects over and over."""
    parts = subject.split(".") if isinstance(subject, str) else [""]
    for i, part in enumerate(parts):
        if not part or any(c.isspace() for c in part):
            raise BadRequest(f"invalid subject {subject!r}: empty token or whitespace")
        if part in ("*", ">") and not wildcards:
            raise BadRequest(f"cannot publish to wildcard subject {subject!r}")
        if part == ">" and i != len(parts) - 1:
            raise BadRequest(f"invalid subject {subject!r}: '>' must be the last token")
        if part not in ("*", ">") and ("*" in part or ">" in part):
            raise BadRequest(f"invalid subject {subject!r}: wildcard inside a token")
    return subject


class Subscription(abc.ABC):
    """A live subscription; ``unsubscribe`` stops delivery to its handler."""

    subject: str
    queue: str | None

    @abc.abstractmethod
    async def unsubscribe(self) -> None: ...


class Transport(abc.ABC):
    """One small interface over a subject-based message bus."""

    @abc.abstractmethod
    async def publish(self, subject: str, data: bytes) -> None: ...

    @abc.abstractmethod
    async def subscribe(
        self, subject: str, handler: Handler, queue: str | None = None
    ) -> Subscription: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    def on_reconnect(self, handler: ReconnectHandler) -> None:
        """Run ``handler`` each time the bus is back after losing its connection."""
