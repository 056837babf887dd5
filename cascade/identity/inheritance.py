"""Keystone's inherited role assignments (OS-INHERIT) in the read model: which projects an
assignment ``inherited_to_projects`` reaches. On a domain: every project of the domain; on a
project: every project below it (through ``parent_id``), not the project itself.

Imports only the table models; the snapshot calls it while indexing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping

from cascade.db.models import InheritedRoleAssignment, Project


def children_of(projects: Iterable[Project]) -> dict[str, list[str]]:
    """Project ids under each parent (a top-level project's parent is its domain)."""
    children: dict[str, list[str]] = defaultdict(list)
    for project in projects:
        children[project.parent_id or project.domain_id].append(project.id)
    return children


def reached(
    children: Mapping[str, list[str]],
    projects: Mapping[str, Project],
    target_type: str,
    target_id: str,
) -> list[str]:
    """Every project an inherited assignment on ``target_type`` ``target_id`` reaches."""
    found: dict[str, None] = {}  # ordered, and a malformed tree never loops
    pending = list(children.get(target_id, ()))
    while pending:
        project_id = pending.pop()
        if project_id not in found:
            found[project_id] = None
            pending.extend(children.get(project_id, ()))
    if target_type == "domain":  # projects whose parent is gone still belong to the domain
        found.update((p.id, None) for p in projects.values() if p.domain_id == target_id)
    return list(found)


def held(
    assignments: Iterable[InheritedRoleAssignment],
    projects: Mapping[str, Project],
    members_of: Mapping[str, set[str]],
) -> Iterator[tuple[str, str, str]]:
    """(user id, project id, role id) for every role an inherited assignment gives a user (a
    group's: each member) on a project."""
    children = children_of(projects.values())
    for grant in assignments:
        users = (
            members_of.get(grant.actor_id, set())
            if grant.actor_type == "group"
            else {grant.actor_id}
        )
        for project_id in reached(children, projects, grant.target_type, grant.target_id):
            for user_id in users:
                yield user_id, project_id, grant.role_id
