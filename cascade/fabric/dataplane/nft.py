"""Security-group enforcement for the Linux dataplane: nftables rules rendered and applied.

Owns, in a host namespace, the two tables named ``cascade`` (``bridge`` and ``inet``) and in
them one group of chains per secured port, keyed by the port's host-side veth ``t{hash}``.
Semantics are Neutron's: stateful (established and related packets pass both ways, invalid
ones are dropped), traffic to the VM (ingress) and from it (egress) denied unless a rule
admits it, ARP always allowed, and the VM may send only from its own MAC and IPv4 address
and its allowed addresses (Neutron's allowed address pairs, at the port's MAC).

Why two tables: stateful filtering needs conntrack on bridged frames. The bridge family has
it only with ``nf_conntrack_bridge``, which kernels are built without (this one is), while
``br_netfilter`` (built in, ``bridge-nf-call-iptables`` on by default in every namespace)
sends bridged IP packets through the ``inet`` hooks with conntrack. There, though, a packet's
devices are the bridge, not its ports, and nftables has no ``physdev`` match. So the
``bridge`` table, whose forward chain sees the ports, does anti-spoofing and marks each
packet with its ports' numbers (``meta mark``: the sending port's in the high 16 bits, the
receiving port's in the low 16); the ``inet`` table's forward chain dispatches on those numbers
to the ports' stateful rule chains. ARP and other non-IP frames never reach ``inet``: ARP is
allowed in ``bridge`` (from a secured port only with its own addresses), other ethertypes
from or to a secured port are dropped there. A known limit: no conntrack zones, so two
networks on one host with the same addresses share connection state.

A port's chains: ``bridge`` ``be-{ifname}`` (anti-spoofing, egress mark) and ``bi-{ifname}``
(ingress mark); ``inet`` ``eg-{ifname}`` and ``in-{ifname}`` (the rules). What is in force is
read back from rule comments: ``port {id} {mac} {ip}`` (then ``{allowed},{allowed}...`` when
it has allowed addresses) on the egress mark and ``rule {n} {direction} {protocol}
{port_min} {port_max} {prefix}`` (``-`` when absent) on each rule,
so a restarted agent sees exactly the rules programmed, in their order. Each change to a
port is one ``nft -f -`` transaction, run in the namespace with ``ip netns exec`` (nftables
has no Python binding here); removing the last secured port deletes both tables.

Imports only ``cascade.errors``.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cascade.errors import BadRequest, Unavailable

TABLE = "cascade"
MAX_NUMBER = 0xFFFF  # numbers share a 32-bit mark, 16 bits each
DIRECTIONS = ("ingress", "egress")
PROTOCOLS = ("tcp", "udp", "icmp", "any")
FIELDS = ("direction", "protocol", "port_min", "port_max", "remote_ip_prefix")
ABSENT = "-"
END = "end"  # the comment on each inet chain's final drop: the chain is complete
TIMEOUT = 30

Rule = Mapping[str, object]


@dataclass(frozen=True)
class Filter:
    """What a secured port's chains enforce: its addresses and its rules (canonical)."""

    mac: str
    ip: str  # address without prefix length
    rules: tuple[Rule, ...]
    allowed: tuple[str, ...] = ()  # the other addresses it may send from (allowed pairs)


# -- rules --------------------------------------------------------------------------------


def _l4_port(rule: Rule, key: str) -> int | None:
    value = rule.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise BadRequest(f"security rule {key} {value!r} is not a port number")
    return value


def _prefix(rule: Rule) -> str | None:
    value = rule.get("remote_ip_prefix")
    if value is None:
        return None
    try:
        return str(ipaddress.ip_network(str(value), strict=False))
    except ValueError as error:
        raise BadRequest(f"security rule prefix {value!r} is not an IP prefix") from error


def canonical(rule: Rule) -> dict[str, object]:
    """The rule checked and without absent fields, as ``ports()`` reads it back."""
    unknown = set(rule) - set(FIELDS)
    if unknown:
        raise BadRequest(f"security rule has unknown fields {sorted(unknown)}")
    if rule.get("direction") not in DIRECTIONS or rule.get("protocol") not in PROTOCOLS:
        raise BadRequest(f"security rule {dict(rule)!r} needs a direction and a protocol")
    low, high = _l4_port(rule, "port_min"), _l4_port(rule, "port_max")
    if rule["protocol"] == "icmp" and max(low or 0, high or 0) > 255:
        raise BadRequest(f"security rule {dict(rule)!r}: ICMP type and code are below 256")
    fields = {
        "direction": rule["direction"],
        "protocol": rule["protocol"],
        "port_min": low,
        "port_max": high,
        "remote_ip_prefix": _prefix(rule),
    }
    return {key: value for key, value in fields.items() if value is not None}


def _comment(index: int, rule: Rule) -> str:
    return " ".join(["rule", str(index), *(str(rule.get(key, ABSENT)) for key in FIELDS)])


def _parse_comment(words: list[str]) -> dict[str, object]:
    direction, protocol, port_min, port_max, prefix = words
    fields: dict[str, object | None] = {
        "direction": direction,
        "protocol": protocol,
        "port_min": None if port_min == ABSENT else int(port_min),
        "port_max": None if port_max == ABSENT else int(port_max),
        "remote_ip_prefix": None if prefix == ABSENT else prefix,
    }
    return {key: value for key, value in fields.items() if value is not None}


def _match(rule: Rule) -> str:
    """The nft match of one rule (empty: everything)."""
    parts = []
    prefix = rule.get("remote_ip_prefix")
    if prefix is not None:
        family = "ip" if ipaddress.ip_network(str(prefix)).version == 4 else "ip6"
        parts.append(f"{family} {'saddr' if rule['direction'] == 'ingress' else 'daddr'} {prefix}")
    protocol, low, high = rule["protocol"], rule.get("port_min"), rule.get("port_max")
    if protocol in ("tcp", "udp"):
        parts.append(f"meta l4proto {protocol}")
        if low is not None or high is not None:
            high = 65535 if high is None else high
            parts.append(f"th dport {low if low is not None else 0}-{high}")
    elif protocol == "icmp":  # Neutron: port_min is the ICMP type, port_max the code
        parts.append("meta l4proto icmp")
        parts += [f"icmp type {low}"] if low is not None else []
        parts += [f"icmp code {high}"] if high is not None else []
    return " ".join(parts)


# -- batches ------------------------------------------------------------------------------


def _chains(ifname: str) -> dict[str, tuple[str, ...]]:
    """Family -> the port's chains in that family's table."""
    return {"bridge": (f"be-{ifname}", f"bi-{ifname}"), "inet": (f"eg-{ifname}", f"in-{ifname}")}


def _bases() -> list[str]:
    """Declare both tables and (re)write their dispatching forward chains."""
    return [
        f"table bridge {TABLE} {{",
        "  map egress { type ifname : verdict; }",
        "  map ingress { type ifname : verdict; }",
        "  chain forward { type filter hook forward priority -100; policy accept; }",
        "}",
        f"table inet {TABLE} {{",
        "  map egress { type mark : verdict; }",
        "  map ingress { type mark : verdict; }",
        "  chain forward { type filter hook forward priority 0; policy accept; }",
        "}",
        f"flush chain bridge {TABLE} forward",
        f"add rule bridge {TABLE} forward meta mark set 0",
        f"add rule bridge {TABLE} forward iifname vmap @egress",
        f"add rule bridge {TABLE} forward oifname vmap @ingress",
        f"flush chain inet {TABLE} forward",
        f"add rule inet {TABLE} forward meta mark and 0xffff0000 vmap @egress",
        f"add rule inet {TABLE} forward meta mark and 0x0000ffff vmap @ingress",
    ]


def _stateful(chain: str, rules: Iterable[tuple[int, Rule]]) -> list[str]:
    lines = [
        f"add rule inet {TABLE} {chain} ct state established,related return",
        f"add rule inet {TABLE} {chain} ct state invalid drop",
    ]
    for index, rule in rules:
        match = _match(rule)
        comment = _comment(index, rule)
        lines.append(f'add rule inet {TABLE} {chain} {match} return comment "{comment}"')
    return [*lines, f'add rule inet {TABLE} {chain} drop comment "{END}"']


def _elements(ifname: str, number: int) -> list[tuple[str, str, str]]:
    """(map, key, chain jumped to) of each of the port's map elements."""
    (bridge_out, bridge_in), (inet_out, inet_in) = _chains(ifname).values()
    return [
        (f"bridge {TABLE} egress", f'"{ifname}"', bridge_out),
        (f"bridge {TABLE} ingress", f'"{ifname}"', bridge_in),
        (f"inet {TABLE} egress", f"{number << 16:#x}", inet_out),
        (f"inet {TABLE} ingress", f"{number:#x}", inet_in),
    ]


def _declare(ifname: str, number: int) -> list[str]:
    """Both tables, the port's chains and map elements: each added unless present, so a
    batch may then rewrite or delete them whatever was left before."""
    lines = _bases()
    for family, chains in _chains(ifname).items():
        lines += [f"add chain {family} {TABLE} {chain}" for chain in chains]
    elements = _elements(ifname, number)
    return lines + [f"add element {name} {{ {key} : jump {to} }}" for name, key, to in elements]


def program(ifname: str, number: int, wanted: Filter) -> str:
    """The batch that makes a port's chains enforce ``wanted`` (created or rewritten)."""
    (bridge_out, bridge_in), (inet_out, inet_in) = _chains(ifname).values()
    lines = _declare(ifname, number)
    for family, chains in _chains(ifname).items():
        lines += [f"flush chain {family} {TABLE} {chain}" for chain in chains]
    bridge, mac = f"add rule bridge {TABLE}", wanted.mac
    ips = ", ".join((wanted.ip, *wanted.allowed))
    described = " ".join(["port", str(number), mac, wanted.ip])
    described += f" {','.join(wanted.allowed)}" if wanted.allowed else ""
    lines += [
        f"{bridge} {bridge_out} ether saddr != {mac} drop",
        f'{bridge} {bridge_out} meta mark set {number << 16:#x} comment "{described}"',
        f"{bridge} {bridge_out} arp saddr ether {mac} arp saddr ip {{ {ips}, 0.0.0.0 }} return",
        f"{bridge} {bridge_out} ip saddr {{ {ips} }} return",
        f"{bridge} {bridge_out} drop",
        f"{bridge} {bridge_in} ether type {{ arp, ip, ip6 }} meta mark set meta mark or {number}",
        f"{bridge} {bridge_in} ether type != {{ arp, ip, ip6 }} drop",
    ]
    numbered = list(enumerate(wanted.rules))
    for direction, chain in (("egress", inet_out), ("ingress", inet_in)):
        lines += _stateful(chain, [(i, r) for i, r in numbered if r["direction"] == direction])
    return "\n".join(lines) + "\n"


def unprogram(ifname: str, number: int, last: bool) -> str:
    """The batch that removes a port's chains (both tables when it is the last port)."""
    if last:
        return f"delete table bridge {TABLE}\ndelete table inet {TABLE}\n"
    lines = _declare(ifname, number)
    lines += [f"delete element {name} {{ {key} }}" for name, key, _ in _elements(ifname, number)]
    for family, chains in _chains(ifname).items():
        for chain in chains:
            lines += [
                f"flush chain {family} {TABLE} {chain}",
                f"delete chain {family} {TABLE} {chain}",
            ]
    return "\n".join(lines) + "\n"


# -- the kernel ---------------------------------------------------------------------------


def _nft(netns: str, *args: str, batch: str | None = None) -> str:
    command = ["ip", "netns", "exec", netns, "nft", *args]
    try:
        done = subprocess.run(
            command, input=batch, capture_output=True, text=True, check=False, timeout=TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise Unavailable(f"nft in {netns!r}: {error}") from error
    if done.returncode != 0:
        raise Unavailable(f"nft {' '.join(args)} in {netns!r}: {done.stderr.strip()}")
    return done.stdout


def apply(netns: str, batch: str) -> None:
    """Run one batch as one nftables transaction inside the namespace."""
    _nft(netns, "-f", "-", batch=batch)


@dataclass
class _Found:
    number: int = 0
    mac: str = ""
    ip: str = ""
    allowed: tuple[str, ...] = ()
    ends: int = 0
    rules: dict[int, dict[str, object]] = field(default_factory=dict)

    def filter(self) -> Filter | None:
        if not self.number or self.ends != len(DIRECTIONS):
            return None
        rules = tuple(self.rules[i] for i in sorted(self.rules))
        return Filter(self.mac, self.ip, rules, self.allowed)


def read(netns: str) -> dict[str, tuple[int, Filter | None]]:
    """Host ifname -> (port number, what its chains enforce, None when they are incomplete:
    to be rewritten), from the comments of the rules in force."""
    found: dict[str, _Found] = {}
    for item in json.loads(_nft(netns, "-j", "list", "ruleset"))["nftables"]:
        rule: dict[str, Any] | None = item.get("rule")
        if rule is None or rule["table"] != TABLE or "comment" not in rule:
            continue
        entry = found.setdefault(rule["chain"][3:], _Found())  # chain "eg-{ifname}" etc.
        words = rule["comment"].split()
        if words[0] == "port":
            entry.number, entry.mac, entry.ip = int(words[1]), words[2], words[3]
            entry.allowed = tuple(words[4].split(",")) if len(words) > 4 else ()
        elif words[0] == "rule":
            entry.rules[int(words[1])] = _parse_comment(words[2:])
        elif words[0] == END:
            entry.ends += 1
    return {ifname: (entry.number, entry.filter()) for ifname, entry in found.items()}


def enforce(netns: str, ifname: str, wanted: Filter | None) -> None:
    """Make a port's chains enforce ``wanted`` (None: remove them, and the tables with the
    last port's), in one transaction and only when what is in force differs."""
    programmed = read(netns)
    number, current = programmed.get(ifname, (0, None))
    if wanted is None:
        if ifname in programmed:
            apply(netns, unprogram(ifname, number, last=len(programmed) == 1))
    elif current != wanted:
        number = number or free_number(n for n, _ in programmed.values())
        apply(netns, program(ifname, number, wanted))


def free_number(taken: Iterable[int]) -> int:
    """The lowest port number not in use."""
    used = set(taken)
    for candidate in range(1, MAX_NUMBER + 1):
        if candidate not in used:
            return candidate
    raise Unavailable(f"more than {MAX_NUMBER} secured ports on one host")
