"""Security groups and their rules: each project's ``default`` group made on first use, the
rules Neutron seeds a new group with, and its checks of a rule's protocol, port range, remote
and ethertype, and of duplicates."""

from __future__ import annotations

import ipaddress
from typing import Any

from cascade_sim.common import public
from cascade_sim.network import checks
from cascade_sim.network.errors import bad, error
from cascade_sim.network.kinds import NAMED, STANDARD, Actor, Attr, Json, Kind
from cascade_sim.network.resources import load, new_body, writable
from cascade_sim.network.store import drop, save
from cascade_sim.region import Region

PROTOCOLS = {
    "ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "icmp": 1, "icmpv6": 58, "igmp": 2,
    "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58, "ipv6-nonxt": 59,
    "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89, "pgm": 113, "rsvp": 46, "sctp": 132,
    "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112,
}  # fmt: skip
PORT_PROTOCOLS = {6, 17, 33, 132, 136}
ICMP_PROTOCOLS = {1, 58}
IPV6_ONLY_PROTOCOLS = {41, 43, 44, 58, 59, 60}
PORT_NUMBER = checks.nullable(checks.integer(0, 65535))


def _protocol(attr: str, value: Any) -> str | None:
    text = str(value).lower() if isinstance(value, int | str) else ""
    if value is None or text == "any":
        return None
    if text in PROTOCOLS or (text.isdigit() and int(text) <= 255):
        return text
    raise bad(
        f"Security group rule protocol {value} not supported. Only protocol values "
        f"{sorted(PROTOCOLS)} and integer representations [0 to 255] are supported.",
        "SecurityGroupRuleInvalidProtocol",
    )


# -- groups ----------------------------------------------------------------------------------


def _seed_rules(site: Region, group: Json, from_itself: bool) -> None:
    """Neutron's rules for a new group: all egress, and for a default group all ingress from
    its own members."""
    for ethertype in ("IPv4", "IPv6"):
        remotes = [("ingress", group["id"])] if from_itself else []
        for direction, remote in [*remotes, ("egress", None)]:
            attrs = {
                "security_group_id": group["id"],
                "direction": direction,
                "ethertype": ethertype,
                "remote_group_id": remote,
            }
            rule = new_body(SECURITY_GROUP_RULE, attrs, group["_project_id"])
            save(site, SECURITY_GROUP_RULE.name, rule)


def default_group(site: Region, project_id: str) -> Json:
    """The project's ``default`` group, created on first use."""
    with site.state.lock:
        for group in site.state.list("security_group", project_id):
            if group.get("_default"):
                return group
        attrs = {"name": "default", "description": "Default security group", "_default": True}
        group = new_body(SECURITY_GROUP, attrs, project_id)
        save(site, SECURITY_GROUP.name, group)
        _seed_rules(site, group, from_itself=True)
        return group


def _ensure_default_group(site: Region, actor: Actor) -> None:
    if actor.project_id:
        default_group(site, actor.project_id)


def _build_group(site: Region, _actor: Actor, _attrs: Json, group: Json) -> None:
    if group["name"] == "default":
        raise error(
            409, "SecurityGroupDefaultAlreadyExists", "Default security group already exists."
        )
    default_group(site, group["_project_id"])
    _seed_rules(site, group, from_itself=False)


def _change_group(_site: Region, _actor: Actor, group: Json, attrs: Json) -> None:
    if group.get("_default") and "name" in attrs:
        raise error(
            409, "SecurityGroupCannotUpdateDefault", "Updating default security group not allowed."
        )
    group.update(attrs)


def _remove_group(site: Region, actor: Actor, group: Json) -> None:
    if any(group["id"] in port["security_groups"] for port in site.state.list("port")):
        raise error(409, "SecurityGroupInUse", f"Security Group {group['id']} in use.")
    if group.get("_default") and not actor.admin:
        message = "Insufficient rights for removing default security group."
        raise error(409, "SecurityGroupCannotRemoveDefault", message)
    for rule in site.state.list("security_group_rule"):
        if group["id"] in (rule["security_group_id"], rule["remote_group_id"]):
            drop(site, SECURITY_GROUP_RULE.name, rule)
    drop(site, SECURITY_GROUP.name, group)


def _expand_groups(site: Region, views: list[Json]) -> None:
    rules: dict[str, list[Json]] = {}
    for rule in site.state.list("security_group_rule"):
        rules.setdefault(rule["security_group_id"], []).append(public(rule))
    for view in views:
        view["security_group_rules"] = rules.get(view["id"], [])


# -- rules -----------------------------------------------------------------------------------


def _protocol_number(protocol: str) -> int:
    return PROTOCOLS[protocol] if protocol in PROTOCOLS else int(protocol)


def _check_port_range(low: int | None, high: int | None) -> None:
    if 0 in (low, high):
        raise bad("Invalid value for port 0.", "SecurityGroupInvalidPortValue")
    if low is None or high is None or low > high:
        message = "For TCP/UDP protocols, port_range_min must be <= port_range_max"
        raise bad(message, "SecurityGroupInvalidPortRange")


def _check_icmp(low: int | None, high: int | None) -> None:
    if any(value is not None and value > 255 for value in (low, high)):
        message = f"Invalid value for ICMP type or code: {low}, {high}. It must be 0 to 255."
        raise bad(message, "SecurityGroupInvalidIcmpValue")
    if low is None:
        message = (
            f"ICMP code (port-range-max) {high} is provided but ICMP type (port-range-min) "
            "is missing."
        )
        raise bad(message, "SecurityGroupMissingIcmpType")


def _check_ports(rule: Json) -> None:
    """Neutron's rules for port ranges: TCP-like ports 1..65535, ICMP type and code."""
    low, high, protocol = rule["port_range_min"], rule["port_range_max"], rule["protocol"]
    if low is None and high is None:
        return
    if protocol is None:
        message = "Must also specify protocol if port range is given."
        raise bad(message, "SecurityGroupProtocolRequiredWithPorts")
    number = _protocol_number(protocol)
    if number in PORT_PROTOCOLS:
        _check_port_range(low, high)
    elif number in ICMP_PROTOCOLS:
        _check_icmp(low, high)
    else:
        message = (
            f"Invalid protocol {protocol} for port range, only supported for TCP, UDP, UDPLITE, "
            "SCTP, DCCP and ICMP protocols."
        )
        raise bad(message, "SecurityGroupInvalidProtocolForPort")


def _check_remote(site: Region, actor: Actor, rule: Json) -> None:
    prefix, ethertype = rule["remote_ip_prefix"], rule["ethertype"]
    if prefix and rule["remote_group_id"]:
        message = "Only remote_ip_prefix or remote_group_id may be provided."
        raise bad(message, "SecurityGroupRemoteGroupAndRemoteIpPrefix")
    if prefix and f"IPv{ipaddress.ip_network(prefix).version}" != ethertype:
        message = f"Conflicting value ethertype {ethertype} for CIDR {prefix}"
        raise bad(message, "SecurityGroupRuleParameterConflict")
    protocol = rule["protocol"]
    if ethertype == "IPv4" and protocol and _protocol_number(protocol) in IPV6_ONLY_PROTOCOLS:
        message = f"Ethertype {ethertype} is not supported for protocol {protocol}."
        raise bad(message, "SecurityGroupEthertypeConflictWithProtocol")
    if rule["remote_group_id"]:
        load(site, SECURITY_GROUP, actor, rule["remote_group_id"])


def _rule_key(rule: Json) -> tuple[Any, ...]:
    protocol = None if rule["protocol"] is None else _protocol_number(rule["protocol"])
    prefix = None if rule["remote_ip_prefix"] in ("0.0.0.0/0", "::/0") else rule["remote_ip_prefix"]
    fields = ("direction", "ethertype", "port_range_min", "port_range_max", "remote_group_id")
    return (*(rule[name] for name in fields), protocol, prefix)


def _build_rule(site: Region, actor: Actor, _attrs: Json, rule: Json) -> None:
    group = writable(site, SECURITY_GROUP, actor, rule["security_group_id"])
    owner = group["_project_id"]
    rule.update(project_id=owner, tenant_id=owner, _project_id=owner)
    if rule["ethertype"] == "IPv6" and rule["protocol"] in ("icmp", "1"):
        rule["protocol"] = "ipv6-icmp" if rule["protocol"] == "icmp" else "58"
    _check_ports(rule)
    _check_remote(site, actor, rule)
    for other in site.state.list("security_group_rule"):
        if other["security_group_id"] == group["id"] and _rule_key(other) == _rule_key(rule):
            message = f"Security group rule already exists. Rule id is {other['id']}."
            raise error(409, "SecurityGroupRuleExists", message)


def _remove_rule(site: Region, _actor: Actor, rule: Json) -> None:
    drop(site, SECURITY_GROUP_RULE.name, rule)


SECURITY_GROUP = Kind(
    "security_group",
    "security_groups",
    "Security group",
    "SecurityGroup",
    {**NAMED, "stateful": Attr(checks.boolean, True, put=False)},
    build=_build_group,
    change=_change_group,
    remove=_remove_group,
    expand=_expand_groups,
    prepare=_ensure_default_group,
)

SECURITY_GROUP_RULE = Kind(
    "security_group_rule",
    "security_group_rules",
    "Security group rule",
    "SecurityGroupRule",
    {
        **STANDARD,
        "security_group_id": Attr(checks.uuid, put=False, required=True),
        "direction": Attr(checks.choice("ingress", "egress"), put=False, required=True),
        "ethertype": Attr(checks.choice("IPv4", "IPv6"), "IPv4", put=False),
        "protocol": Attr(_protocol, None, put=False),
        "port_range_min": Attr(PORT_NUMBER, None, put=False),
        "port_range_max": Attr(PORT_NUMBER, None, put=False),
        "remote_ip_prefix": Attr(checks.nullable(checks.prefix), None, put=False),
        "remote_group_id": Attr(checks.nullable(checks.uuid), None, put=False),
    },
    build=_build_rule,
    remove=_remove_rule,
    prepare=_ensure_default_group,
)
