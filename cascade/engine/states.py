"""Each resource kind declares one state machine: which actions it allows in which states.

An action moves the resource into its "during" state at once, in the same transaction that
accepts the operation, by a conditional UPDATE: two requests racing for one resource cannot
both pass. The operation's last step moves it to the "done" state (or deletes the row), but
only while the operation is still the resource's current task.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.orm import Session

from cascade.errors import Conflict, NotFound

ERROR = "ERROR"


@dataclass(frozen=True)
class Transition:
    allowed_from: frozenset[str]
    during: str
    done: str | None  # None: the resource is gone once the operation succeeds


def transition(allowed_from: Iterable[str], during: str, done: str | None) -> Transition:
    return Transition(frozenset(allowed_from), during, done)


class StateMachine:
    """The states and actions of one resource kind, applied to its table (``model`` has
    ``id``, ``status`` and ``task_operation_id`` columns)."""

    def __init__(self, kind: str, model: Any, transitions: dict[str, Transition]) -> None:
        self.kind = kind
        self.model = model
        self.transitions = transitions

    def begin(self, session: Session, resource_id: str, action: str, operation_id: str) -> None:
        """Enter the action's "during" state, or raise 404/409 saying why not."""
        rule = self.transitions[action]
        model = self.model
        changed = session.execute(
            update(model)
            .where(model.id == resource_id, model.status.in_(rule.allowed_from))
            .values(status=rule.during, task_operation_id=operation_id)
            .execution_options(synchronize_session=False)
        )
        if changed.rowcount == 1:  # type: ignore[attr-defined]
            return
        row = session.scalar(select(model).where(model.id == resource_id))
        if row is None:
            raise NotFound(f"Could not find {self.kind}: {resource_id}.")
        running = f" while operation {row.task_operation_id} runs" if row.task_operation_id else ""
        allowed = ", ".join(sorted(rule.allowed_from))
        raise Conflict(
            f"Cannot {action} {self.kind} {resource_id}: it is {row.status}{running}; "
            f"{action} is allowed only when it is {allowed}."
        )

    def finish(
        self,
        connection: Connection,
        resource_id: str,
        action: str,
        operation_id: str,
        error: str | None,
    ) -> None:
        """Leave the "during" state: to "done" on success, ERROR on failure (with the failed
        operation's error in the resource's ``error`` column, where it has one; a success
        clears it). A resource that a later operation has taken over (delete queued behind
        create) is left to that one."""
        rule = self.transitions[action]
        model = self.model
        mine = (model.id == resource_id, model.task_operation_id == operation_id)
        if error is None and rule.done is None:
            connection.execute(delete(model).where(*mine))
            return
        values: dict[str, Any] = {
            "status": ERROR if error else rule.done,
            "task_operation_id": None,
        }
        if hasattr(model, "error"):
            values["error"] = error
        connection.execute(update(model).where(*mine).values(**values))


_machines: dict[str, StateMachine] = {}


def declare(machine: StateMachine) -> StateMachine:
    _machines[machine.kind] = machine
    return machine


def machine_for(kind: str) -> StateMachine | None:
    """The kind's state machine; None for kinds without state (an engine probe)."""
    return _machines.get(kind)
