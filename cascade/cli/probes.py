"""Real packets for ``cascade demo`` and ``cascade bench network``: a throwaway underlay (a
network namespace holding one bridge, which site-sims on the Linux dataplane plug their hosts
into), and probes from inside an emulated VM's namespace: one ping, or a pinger that sends an
ICMP echo every few milliseconds and records when each reply came back and from which MAC,
from which a service IP move's switchover and loss window are read. The probes run a small
script under ``ip netns exec`` with this Python (a raw ICMP socket: no ping binary needed).
All of it needs root. Used by the CLI only."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from cascade.errors import CascadeError, Unavailable

# argv: address, interval (s), duration (s). Prints "seq send_time reply_time mac" per reply,
# mac being the one the namespace's ARP table holds for the address then (who answered).
PINGER = """
import os, select, socket, struct, sys, time
address, interval, duration = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
ident = os.getpid() & 0xFFFF
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
def packet(seq):
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"cascade-probes"
    total = sum(struct.unpack("!%dH" % (len(body) // 2), body))
    total = (total >> 16) + (total & 0xFFFF)
    total = ~(total + (total >> 16)) & 0xFFFF
    return body[:2] + struct.pack("!H", total) + body[4:]
def arp():
    with open("/proc/net/arp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[0] == address:
                return fields[3]
    return "-"
sent, seq, start = {}, 0, time.monotonic()
next_send = start
while time.monotonic() < start + duration:
    now = time.monotonic()
    if now >= next_send:
        seq = (seq + 1) & 0xFFFF
        sent[seq] = time.time()
        try:
            sock.sendto(packet(seq), (address, 0))
        except OSError:
            pass
        next_send += interval
    ready, _, _ = select.select([sock], [], [], max(next_send - time.monotonic(), 0))
    if ready:
        data, source = sock.recvfrom(2048)
        start_ip = (data[0] & 15) * 4
        kind, _, _, reply_id, reply_seq = struct.unpack("!BBHHH", data[start_ip : start_ip + 8])
        if kind == 0 and reply_id == ident and source[0] == address and reply_seq in sent:
            print(reply_seq, sent.pop(reply_seq), time.time(), arp(), flush=True)
"""


def can_make_namespaces() -> bool:
    """Root with iproute2's ``ip netns`` working: what the Linux dataplane needs."""
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, check=False)
    return done.returncode == 0


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CascadeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


@contextmanager
def underlay_bridge() -> Iterator[str]:
    """A namespace ``cul-XXXX`` holding a bridge ``ubr``: yields ``NETNS/BRIDGE`` for
    ``cascade site-sim --underlay``; the namespace (and so the bridge) is removed after."""
    name = f"cul-{secrets.token_hex(3)}"
    _ip("netns", "add", name)
    try:
        _ip("-n", name, "link", "add", "ubr", "type", "bridge")
        _ip("-n", name, "link", "set", "ubr", "up")
        yield f"{name}/ubr"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def _in_namespace(netns: str, *argv: str) -> list[str]:
    return ["ip", "netns", "exec", netns, sys.executable, "-c", PINGER, *argv]


def ping(netns: str, address: str, timeout: float = 2.0) -> bool:
    """Whether one echo from ``netns`` to ``address`` is answered within ``timeout``."""
    done = subprocess.run(
        _in_namespace(netns, address, str(timeout), str(timeout)),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout + 10,
    )
    if done.returncode != 0:
        raise Unavailable(f"ping from {netns}: {done.stderr.strip()[-300:]}")
    return bool(done.stdout.strip())


def answering(netns: str, address: str, what: str, timeout: float = 30) -> None:
    """Return once ``address`` answers a ping from ``netns``; an error after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not ping(netns, address):
        if time.monotonic() > deadline:
            raise CascadeError(f"no answer from {address} ({what}) in {timeout:.0f} s")


@dataclass
class Replies:
    """What a pinger saw: for each answered echo, when it was sent, when answered, and the
    MAC its namespace's ARP table held for the address (the holder that answered)."""

    sent: list[float] = field(default_factory=list)
    answered: list[float] = field(default_factory=list)
    macs: list[str] = field(default_factory=list)

    def loss_window(self, after: float) -> float:
        """The longest time without a reply, among the gaps that end after ``after`` (the
        moment the move began): what the move cost the pinger's flow, in seconds."""
        gaps = [
            (later - earlier)
            for earlier, later in zip(self.answered, self.answered[1:], strict=False)
            if later > after
        ]
        return max(gaps, default=0.0)

    def first_from(self, mac: str, after: float) -> float | None:
        """When the first reply after ``after`` came from ``mac`` (the new holder), or None."""
        return next(
            (t for t, m in zip(self.answered, self.macs, strict=True) if t > after and m == mac),
            None,
        )


class Pinger:
    """An echo every ``interval`` seconds from ``netns`` to ``address`` for ``duration``."""

    def __init__(self, netns: str, address: str, interval: float, duration: float) -> None:
        self._process = subprocess.Popen(
            _in_namespace(netns, address, str(interval), str(duration)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started = time.time()

    def result(self) -> Replies:
        out, err = self._process.communicate()
        if self._process.returncode != 0:
            raise Unavailable(f"pinger: {err.strip()[-300:]}")
        replies = Replies()
        for line in out.splitlines():
            _seq, sent, answered, mac = line.split()
            replies.sent.append(float(sent))
            replies.answered.append(float(answered))
            replies.macs.append(mac)
        return replies

    def stop(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
