"""Security groups as replication sees them: the project's groups (not its ``default``, which
every site makes itself) by name, each with its description and rules. A rule names its
remote group by the group's name, so the same state reads alike at every site and is
written with the target's own group ids: every group to write is made first (empty), then
each one's rules are added and removed to match. A site's groups are listed as Neutron's
JSON, the project's only, a page at a time (``kinds.paged``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from openstack.connection import Connection

from cascade.replication.kinds import Found, Kind, State, paged, register

DEFAULT = "default"
RULE_FIELDS = (
    "direction",
    "ethertype",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
)


def _rule(rule: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    remote = rule.get("remote_group_id")
    return {
        **{f: rule.get(f) for f in RULE_FIELDS},
        "remote_group": names.get(remote, remote) if remote else None,
    }


def _id(group: dict[str, Any]) -> str:
    return str(group["id"])


def _key(rule: dict[str, Any]) -> str:
    return json.dumps(rule, sort_keys=True)


class SecurityGroups(Kind):
    name = "security_groups"
    singular = "security group"

    def listing(self, c: Connection) -> dict[str, Found]:
        mine = {"project_id": c.current_project_id}
        groups = list(paged(c.network, "/security-groups", "security_groups", mine, _id))
        names = {g["id"]: g["name"] for g in groups}
        found = {}
        for group in groups:
            rules = {_key(_rule(r, names)): r["id"] for r in group["security_group_rules"] or []}
            state = {
                "description": group["description"] or "",
                "rules": sorted(rules),
            }
            found[group["name"]] = Found(group["id"], state, {"rules": rules})
        return found

    def in_scope(self, name: str) -> bool:
        return name != DEFAULT

    def placeholders(self, c: Connection, names: Iterable[str], ids: dict[str, str]) -> None:
        for name in names:
            if name not in ids:
                ids[name] = c.network.create_security_group(name=name, description="").id

    def write(
        self, c: Connection, name: str, state: State, found: Found | None, ids: dict[str, str]
    ) -> str:
        group_id = ids[name]
        if found is None or found.state["description"] != state["description"]:
            c.network.update_security_group(group_id, description=state["description"])
        have: dict[str, str] = found.detail["rules"] if found is not None else {}
        if found is None:  # a group just made: Neutron seeded its egress rules
            have = self.listing(c)[name].detail["rules"]
        for key in sorted(set(have) - set(state["rules"])):
            c.network.delete_security_group_rule(have[key])
        for key in sorted(set(state["rules"]) - set(have)):
            rule = json.loads(key)
            remote = rule.pop("remote_group")
            c.network.create_security_group_rule(
                security_group_id=group_id,
                remote_group_id=ids.get(remote, remote) if remote else None,
                **rule,
            )
        return group_id

    def delete(self, c: Connection, found: Found) -> None:
        c.network.delete_security_group(found.id)


SECURITY_GROUPS = register(SecurityGroups())
