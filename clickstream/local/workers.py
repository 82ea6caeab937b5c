"""Worker processes on this machine (`clickstream consume --local`), for the demo and tests.

Each worker is what a user would run in a terminal: its own process, its own worker id,
its log in a file. Stopping one sends SIGTERM to it alone, as ECS does to a task.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, ClassVar

from clickstream.kernel.errors import ConsumerError
from insights import progress


class LocalWorker:
    started: ClassVar[list[LocalWorker]] = []
    """Every worker started by this process, so a caller that fails half-way (a test, the
    demo) can still kill what it left running: `kill_leftovers`."""

    def __init__(
        self, worker_id: str, log_path: Path, extra_env: Mapping[str, str] | None = None
    ) -> None:
        self.worker_id = worker_id
        self.log_path = log_path
        self.extra_env = dict(extra_env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> LocalWorker:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        command = [sys.executable, "-m", "clickstream.cli", "consume", "--local"]
        self.process = subprocess.Popen(
            [*command, "--worker-id", self.worker_id],
            env={**os.environ, **self.extra_env},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            start_new_session=True,
        )
        LocalWorker.started.append(self)
        return self

    @classmethod
    def kill_leftovers(cls) -> list[str]:
        """Kill every worker started here that is still running; their ids."""
        killed = [worker.worker_id for worker in cls.started if worker.running]
        for worker in cls.started:
            worker.kill()
        cls.started.clear()
        return killed

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 90.0) -> int:
        """SIGTERM (graceful: every shard flushes and checkpoints); returns the exit status."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._close()

    def _signal_all(self, signum: int) -> None:
        if self.process is None:
            return
        for child in _children(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child, signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def pause(self) -> None:
        """SIGSTOP to the worker, its daemon and processors: a long GC or VM pause."""
        self._signal_all(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_all(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL to the worker and everything it started: a crash, nothing flushed.

        The KCL daemon runs in a process group of its own (so a terminal's Ctrl-C does not
        reach it), with the record processors in it: that group is killed with the worker.
        """
        if self.process is not None and self.process.poll() is None:
            self._signal_all(signal.SIGKILL)
            self.process.wait(timeout=30)
        self._close()

    def _close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    tree, frontier = [pid], [pid]
    while frontier:
        children = _children(frontier.pop())
        tree += children
        frontier += children
    return tree


def wait_until_caught_up(
    dynamodb: Any,
    lease_table: str,
    last_sequences: Mapping[str, str],
    workers: Sequence[LocalWorker],
    *,
    timeout: float,
    poll_seconds: float = 1.0,
) -> float:
    """Block until every shard is checkpointed at its last record; returns seconds waited."""
    started = time.monotonic()
    while True:
        for worker in workers:
            if not worker.running:
                raise ConsumerError(
                    f"worker {worker.worker_id} stopped before catching up; its log ends:\n"
                    + worker.log_tail()
                )
        checkpoints = progress.lease_checkpoints(dynamodb, lease_table)
        if progress.caught_up(checkpoints, last_sequences):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise ConsumerError(
                f"workers did not catch up within {timeout:.0f} s: checkpoints {checkpoints}, "
                f"last records {dict(last_sequences)}"
            )
        time.sleep(poll_seconds)
