"""Options shared by several ``cascade`` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Data directory [env CASCADE_DATA_DIR, default ./cascade-data]"
    ),
]
