"""What ``cascade bench engine`` prints: a Rich table of the figures by worker count (Cascade's,
raw DBOS's, the costs per operation, the site operations'), the single figures, and the JSON
line that ends the output with ``--json``."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table

ROWS = ("ops_per_s", "ops_vs_baseline", "p50_ms", "p99_ms", "failed", "submit_per_s")
COST_ROWS = (
    "commits_per_op",
    "worker_cpu_ms_per_op",
    "api_cpu_ms_per_op",
    "database_cpu_ms_per_op",
)
IDLE_ROWS = ("idle_commits_per_s", "idle_worker_cpu_ms_per_s", "idle_api_cpu_ms_per_s")
RAW_ROWS = ("raw_dbos_ops_per_s", "ratio", "raw_dbos_p50_ms", "raw_dbos_p99_ms", "raw_dbos_failed")
RAW_COST_ROWS = (
    "raw_dbos_commits_per_op",
    "raw_dbos_worker_cpu_ms_per_op",
    "raw_dbos_database_cpu_ms_per_op",
    "raw_dbos_idle_commits_per_s",
    "raw_dbos_idle_worker_cpu_ms_per_s",
)
RAW_STEP_ROWS = (  # raw DBOS again, each job one empty step as a "step_" probe runs
    "raw_dbos_step_ops_per_s",
    "raw_dbos_step_commits_per_op",
    "raw_dbos_step_worker_cpu_ms_per_op",
    "raw_dbos_step_database_cpu_ms_per_op",
)


def _cell(value: float | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    return f"{value:,.1f}" if value >= 10 else f"{value:.3g}"


def report(console: Console, figures: dict[str, Any]) -> None:
    """The figures as a table by worker count, then the single figures."""
    counts = list(figures["ops_per_s"])
    title = f"cascade bench engine on {figures['database']} ({figures['cores']} cores)"
    table = Table("figure", *(f"workers={count}" for count in counts), title=title)
    batch = [row for row in (*ROWS, *COST_ROWS, *IDLE_ROWS) if row != "ops_vs_baseline"]
    step_rows = (*(f"step_{row}" for row in batch), "ratio_step", *RAW_STEP_ROWS)
    rows = (*ROWS, *RAW_ROWS, *COST_ROWS, *IDLE_ROWS, *RAW_COST_ROWS, *step_rows)
    for key in (*rows, *(f"site_{row}" for row in batch)):
        if figures.get(key):
            table.add_row(key, *(_cell(figures[key][count]) for count in counts))
    console.print(table)
    console.print(f"baseline: {figures['baseline_tx_per_s']:,.1f} records/s (insert+update)")
    console.print(f"best Cascade / best raw DBOS, no-op: {figures['ratio_to_raw']:.2f}")
    console.print(f"the same, one empty step each: {figures['ratio_to_raw_step']:.2f}")
    if "recovery_s" in figures:
        console.print(
            f"recovery: {figures['recovery_s']:.2f} s for {figures['recovery_workflows']} "
            f"workflows of a killed worker ({figures['recovery_failed']} creates failed)"
        )


def _rounded(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    return round(value, 3) if isinstance(value, float) else value


def json_line(figures: dict[str, Any]) -> str:
    """The figures as one JSON object, floats to 3 decimals."""
    return json.dumps(_rounded(figures))
