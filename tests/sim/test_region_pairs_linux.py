"""A service IP as an allowed address pair, moved between two emulated regions on the Linux
dataplane: the VIP is a pair on server A's port at region 1 and on A's remote port at region
2; a pinger (a third server, at region 1) pings it every 10 ms; the pair moves to server B
at region 2 (freed at A's port and A's remote port, taken at B's port and B's remote port at
region 1) and the pings resume, answered by B: the pinger's ARP entry names B's MAC and B's
receive counter climbs. The loss window is measured and printed. Real ``cascade site-sim
--dataplane linux --underlay`` processes driven through openstacksdk; skipped outside CI
unless root (``require_netns``)."""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tests.fabric.netns import ping, require_netns, run_in
from tests.sim.linux_regions import Placed, boot, eventually, place, regions, shadow

VIP = "10.42.0.250"  # outside both regions' pools

# Echo requests every INTERVAL seconds until SIGTERM, then one JSON line: each request's send
# time and each answered one's (time.monotonic, which every process shares on Linux).
PINGER = """
import json, os, signal, socket, struct, sys, threading, time
address, interval = sys.argv[1], float(sys.argv[2])
ident, sent, answered, stop = os.getpid() & 0xFFFF, {}, {}, threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
sock.settimeout(0.2)

def checksum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF

def receive():
    while not stop.is_set():
        try:
            data, source = sock.recvfrom(2048)
        except socket.timeout:
            continue
        start = (data[0] & 15) * 4
        kind, _, _, reply_id, seq = struct.unpack("!BBHHH", data[start : start + 8])
        if kind == 0 and reply_id == ident and source[0] == address:
            answered.setdefault(seq, time.monotonic())

threading.Thread(target=receive, daemon=True).start()
seq = 0
while not stop.is_set():
    seq += 1
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq & 0xFFFF) + b"cascade-vip!"
    sent[seq] = time.monotonic()
    sock.sendto(body[:2] + struct.pack("!H", checksum(body)) + body[4:], (address, 0))
    stop.wait(interval)
time.sleep(0.3)
print(json.dumps({"sent": sent, "answered": answered}))
"""


def pairs(*addresses: str) -> list[dict[str, str]]:
    return [{"ip_address": f"{address}/32"} for address in addresses]


def counter(vm_netns: str, name: str) -> int:
    return int(run_in(vm_netns, "cat", f"/sys/class/net/eth0/statistics/{name}"))


def holds_vip(placed: Placed) -> bool:
    namespace = placed.vm_namespace()
    return namespace is not None and f"{VIP}/24" in run_in(namespace, "ip", "-4", "addr")


def neighbour_mac(vm_netns: str, address: str) -> str:
    """The MAC the VM's ARP cache holds for an address ("" when none)."""
    words = run_in(vm_netns, "ip", "neigh", "show", address).split()
    return words[words.index("lladdr") + 1] if "lladdr" in words else ""


def loss_window(result: dict[str, Any], since: float) -> float:
    """The longest time between two answered requests sent after ``since`` (send times)."""
    sent = {int(seq): t for seq, t in result["sent"].items()}
    answered = sorted(int(seq) for seq in result["answered"])
    before = [seq for seq in answered if sent[seq] < since]
    kept = before[-1:] + [seq for seq in answered if sent[seq] >= since]
    return max(sent[b] - sent[a] for a, b in itertools.pairwise(kept))


def test_a_service_ip_moves_between_regions_with_gratuitous_arp(tmp_path: Path) -> None:
    require_netns()
    with ExitStack() as stack:
        one, two = regions(stack, tmp_path, "fab-p1", "fab-p2")
        a = place(one, ("10.42.0.10", "10.42.0.99"))
        pinger = boot(one, a.conn, a.network_id, "pinger")
        b = place(two, ("10.42.0.100", "10.42.0.199"))
        remote_b = shadow(a, b)  # at region 1
        remote_a, _ = shadow(b, a), shadow(b, pinger)  # at region 2
        a.conn.network.update_port(a.port, allowed_address_pairs=pairs(VIP))
        b.conn.network.update_port(remote_a, allowed_address_pairs=pairs(VIP))
        eventually(lambda: holds_vip(a), "a's guest to take the VIP")
        pinger_vm = pinger.vm_namespace()
        assert pinger_vm is not None
        eventually(lambda: ping(pinger_vm, VIP), "the VIP to answer the pinger")
        assert neighbour_mac(pinger_vm, VIP) == a.port.mac_address

        probe = [sys.executable, "-c", PINGER, VIP, "0.01"]
        pings = subprocess.Popen(
            ["ip", "netns", "exec", pinger_vm, *probe], stdout=subprocess.PIPE, text=True
        )
        stack.callback(pings.kill)
        time.sleep(1.0)
        b_vm = b.vm_namespace()
        assert b_vm is not None
        moved_at = time.monotonic()
        a.conn.network.update_port(a.port, allowed_address_pairs=[])
        b.conn.network.update_port(remote_a, allowed_address_pairs=[])
        b.conn.network.update_port(b.port, allowed_address_pairs=pairs(VIP))
        a.conn.network.update_port(remote_b, allowed_address_pairs=pairs(VIP))
        eventually(lambda: holds_vip(b) and not holds_vip(a), "the VIP to move to b's guest")
        eventually(lambda: neighbour_mac(pinger_vm, VIP) == b.port.mac_address, "the GARP")
        received = counter(b_vm, "rx_packets")
        time.sleep(1.0)
        pings.send_signal(signal.SIGTERM)
        out, _ = pings.communicate(timeout=30)
        result = json.loads(out)
        assert counter(b_vm, "rx_packets") - received >= 50  # b answers the pings now
        last = max(int(seq) for seq in result["sent"])
        assert str(last - 1) in result["answered"] or str(last) in result["answered"]
        window = loss_window(result, moved_at)
        print(f"service IP moved between regions: loss window {window:.3f} s")
