"""Supervise worker processes: start N, restart any that exits (with backoff), stop them all.

The ``os.wait`` loop of a classic pre-fork server: a thread blocks in ``os.waitpid`` for any
child, and the slot of the child that ended is started again with the same executor id, so
the new process resumes that slot's unfinished workflows at once. A slot that keeps dying is
restarted after 1, 2, 4 ... 30 s; a minute of good health resets its backoff.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("cascade.supervisor")
MAX_BACKOFF = 30.0
HEALTHY_AFTER = 60.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM me when the supervisor dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Slot:
    executor_id: str
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    backoff: float = 0.0
    restarts: int = 0
    history: list[int] = field(default_factory=list)  # exit codes, newest last


class Supervisor:
    def __init__(self, count: int, data_dir: Path, log_dir: Path) -> None:
        host = socket.gethostname()
        self.slots = [Slot(f"{host}-w{index}") for index in range(1, count + 1)]
        self._data_dir = data_dir
        self._log_dir = log_dir
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="supervisor", daemon=True)

    def start(self) -> None:
        if not self.slots:
            return
        self._log_dir.mkdir(parents=True, exist_ok=True)
        for slot in self.slots:
            self._spawn(slot)
        self._thread.start()

    def _spawn(self, slot: Slot) -> None:
        command = [
            sys.executable,
            "-m",
            "cascade",
            "worker",
            "--data-dir",
            str(self._data_dir),
            "--executor-id",
            slot.executor_id,
        ]
        with (self._log_dir / f"worker-{slot.executor_id}.log").open("ab") as output:
            slot.process = subprocess.Popen(
                command, stdout=output, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
            )
        slot.started = time.monotonic()
        log.info("worker %s started (pid %d)", slot.executor_id, slot.process.pid)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:  # no children right now
                time.sleep(0.2)
                continue
            slot = next((s for s in self.slots if s.process and s.process.pid == pid), None)
            if slot is None or self._stopping.is_set():
                continue
            slot.process.returncode = os.waitstatus_to_exitcode(status)  # type: ignore[union-attr]
            slot.history.append(slot.process.returncode)  # type: ignore[union-attr]
            self._restart(slot)

    def _restart(self, slot: Slot) -> None:
        lived = time.monotonic() - slot.started
        slot.backoff = (
            0.0 if lived >= HEALTHY_AFTER else min(max(1.0, slot.backoff * 2), MAX_BACKOFF)
        )
        log.warning(
            "worker %s exited with %s after %.1f s; restarting in %.0f s",
            slot.executor_id,
            slot.history[-1],
            lived,
            slot.backoff,
        )
        if self._stopping.wait(slot.backoff):
            return
        slot.restarts += 1
        self._spawn(slot)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every worker, then SIGKILL those still running after ``timeout``."""
        self._stopping.set()
        running = [s.process for s in self.slots if s.process and s.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
