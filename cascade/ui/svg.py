"""The geometry of the dashboard's two pictures, computed on the server and drawn by SVG
templates: the map of sites around the identity master with one link each (green: reached
and following, red: unreachable, cut off or behind, amber: key set differs, grey: not checked
yet; the lag on the edge), and the timeline of an operation's steps (also a restore's: its
operation's). Pure functions of what the pages read; no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from cascade.engine.schemas import OperationOut

MAP_SIZE = 520
_CENTER = MAP_SIZE / 2
_RADIUS = MAP_SIZE / 2 - 70


@dataclass(frozen=True)
class MapNode:
    name: str
    x: float
    y: float
    colour: str  # green, red, grey, amber
    edge_label: str  # the lag on the link, or the reason there is none
    label_x: float
    label_y: float


def site_map(nodes: list[tuple[str, str, str]]) -> list[MapNode]:
    """``(name, colour, edge label)`` per site, placed on a circle around the master."""
    placed = []
    count = max(1, len(nodes))
    for index, (name, colour, label) in enumerate(nodes):
        angle = -math.pi / 2 + 2 * math.pi * index / count
        x = _CENTER + _RADIUS * math.cos(angle)
        y = _CENTER + _RADIUS * math.sin(angle)
        # The edge's label sits a little off the middle of the link, away from the master.
        placed.append(
            MapNode(
                name,
                round(x, 1),
                round(y, 1),
                colour,
                label,
                round(_CENTER + 0.55 * _RADIUS * math.cos(angle), 1),
                round(_CENTER + 0.55 * _RADIUS * math.sin(angle) - 6, 1),
            )
        )
    return placed


TIMELINE_WIDTH = 760
_LABEL_WIDTH = 220
_ROW = 26


@dataclass(frozen=True)
class Bar:
    label: str
    status: str
    x: float
    width: float
    y: float
    title: str


@dataclass(frozen=True)
class Timeline:
    bars: list[Bar]
    height: int
    span_s: float
    label_width: int = _LABEL_WIDTH
    width: int = TIMELINE_WIDTH


def timeline(operation: OperationOut, now: datetime | None = None) -> Timeline:
    """One bar per step, from its start to its end (or now, while it runs), on a scale from
    the operation's acceptance to its end."""
    now = now or datetime.now(UTC)
    start = operation.created_at
    end = operation.finished_at or now
    for step in operation.steps:
        end = max(end, step.finished_at or now)
    span = max((end - start).total_seconds(), 0.001)
    scale = (TIMELINE_WIDTH - _LABEL_WIDTH - 10) / span
    bars = []
    for row, step in enumerate(operation.steps):
        began = (step.started_at - start).total_seconds()
        lasted = ((step.finished_at or now) - step.started_at).total_seconds()
        label = step.name + (f" @ {step.site}" if step.site and step.site not in step.name else "")
        title = f"{label}: {step.status}, {lasted:.2f} s, attempts {step.attempts}"
        bars.append(
            Bar(
                label,
                step.status,
                round(_LABEL_WIDTH + began * scale, 1),
                round(max(2.0, lasted * scale), 1),
                row * _ROW + 8,
                title + (f": {step.error}" if step.error else ""),
            )
        )
    return Timeline(bars, max(1, len(bars)) * _ROW + 30, round(span, 2))
