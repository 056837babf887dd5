"""Supervise worker processes: start N, restart any that exits (with backoff), stop them all.

Each slot has a thread that starts its worker and waits for it (``Popen.wait``, so only the
slot's own child is reaped); when the worker ends, the slot starts it again with the same
executor id, so the new process resumes that slot's unfinished workflows at once. A worker
that dies before it has run for a minute is restarted with Cascade's one backoff
(``cascade.retry``: after 1, 2, 4 ... 30 s); one that ran longer is restarted at once and its
backoff starts again.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from cascade.errors import CascadeError
from cascade.retry import Backoff, until_stopped

log = logging.getLogger("cascade.supervisor")
RESTART_BACKOFF = Backoff(first=1.0, cap=30.0)
HEALTHY_AFTER = 60.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class WorkerDied(CascadeError):
    """A worker exited before it had run for ``HEALTHY_AFTER`` seconds."""


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM me when the supervisor dies, even by SIGKILL."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Slot:
    executor_id: str
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restarts: int = 0
    history: list[int] = field(default_factory=list)  # exit codes, newest last


class Supervisor:
    def __init__(self, count: int, data_dir: Path, log_dir: Path) -> None:
        host = socket.gethostname()
        self.slots = [Slot(f"{host}-w{index}") for index in range(1, count + 1)]
        self._data_dir = data_dir
        self._log_dir = log_dir
        self._stopping = threading.Event()
        self._spawning = threading.Lock()  # no worker starts once stop() has begun
        self._threads = [
            threading.Thread(
                target=self._keep, args=(slot,), name=f"supervise-{slot.executor_id}", daemon=True
            )
            for slot in self.slots
        ]

    def start(self) -> None:
        if not self.slots:
            return
        self._log_dir.mkdir(parents=True, exist_ok=True)
        for thread in self._threads:
            thread.start()

    def _keep(self, slot: Slot) -> None:
        """Keep the slot's worker running until ``stop``."""
        while not self._stopping.is_set():
            until_stopped(RESTART_BACKOFF, self._stopping, lambda: self._run(slot), _log_restart)

    def _run(self, slot: Slot) -> None:
        """Start the slot's worker and wait for it to end; ``WorkerDied`` if it ended soon."""
        process = self._spawn(slot)
        if process is None:
            return
        code = process.wait()
        slot.history.append(code)
        if self._stopping.is_set():
            return
        lived = time.monotonic() - slot.started
        message = f"worker {slot.executor_id} exited with {code} after {lived:.1f} s"
        if lived < HEALTHY_AFTER:
            raise WorkerDied(message)
        log.warning("%s; restarting now", message)

    def _spawn(self, slot: Slot) -> subprocess.Popen[bytes] | None:
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
        with self._spawning:
            if self._stopping.is_set():
                return None
            with (self._log_dir / f"worker-{slot.executor_id}.log").open("ab") as output:
                slot.process = subprocess.Popen(
                    command, stdout=output, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
                )
        if slot.started:
            slot.restarts += 1
        slot.started = time.monotonic()
        log.info("worker %s started (pid %d)", slot.executor_id, slot.process.pid)
        return slot.process

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM every worker, then SIGKILL those still running after ``timeout``."""
        with self._spawning:
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
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)


def _log_restart(error: BaseException, delay: float) -> None:
    log.warning("%s; restarting in %.0f s", error, delay)
