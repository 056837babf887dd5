"""The ``cascade`` command's entry point (console script and ``python -m cascade``): a SIGINT
while the command's modules are still being imported ends the process with one line and exit
130, not a ``KeyboardInterrupt`` traceback; once ``main.LazyCommands`` has imported the command,
the command handles it itself."""

from __future__ import annotations

import signal
import sys
from types import FrameType


def _interrupted(_signum: int, _frame: FrameType | None) -> None:
    print("cascade: interrupted", file=sys.stderr)
    sys.exit(130)


def main() -> None:
    signal.signal(signal.SIGINT, _interrupted)  # until the command's module is imported
    from cascade.cli.main import main as run

    run()
