"""Helpers to run the local stack in tests: free loopback ports, a private state dir."""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

from clickstream.local import processes
from clickstream.local.settings import LOOPBACK, LocalStackSettings

PORTS_PER_PROCESS = 2_000
"""Each pytest process (xdist's gw0, gw1, ...) draws ports from a slice of its own."""
FIRST_PORT = 12_000
"""Below the kernel's ephemeral range (32768-60999 here), so an outgoing connection of any
process cannot take a port between the moment it is drawn and the moment a server binds it."""


_handed_out: set[int] = set()
"""Ports drawn already: a port drawn is not yet bound, so it must not be drawn again."""


def free_port() -> int:
    """A loopback port nobody listens on, from this test process's own slice, never the same
    one twice in a process."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    first = FIRST_PORT + PORTS_PER_PROCESS * (int(worker) if worker.isdigit() else 0)
    for _ in range(200):
        port = random.randrange(first, first + PORTS_PER_PROCESS)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((LOOPBACK, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {first}-{first + PORTS_PER_PROCESS}")


def isolated_settings(state_dir: Path, **overrides: object) -> LocalStackSettings:
    """Settings on ports nobody else uses, so tests never meet a developer's own stack."""
    values: dict[str, object] = {
        "state_dir": state_dir,
        "moto_port": free_port(),
        "kinesis_port": free_port(),
        "kinesis_tls_port": free_port(),
        "stack_name": "cstest",
    }
    values.update(overrides)
    return LocalStackSettings(**values)  # type: ignore[arg-type]


def emulator_pids_alive(pids_and_markers: list[tuple[int, str]]) -> list[int]:
    return [pid for pid, marker in pids_and_markers if processes.is_running(pid, marker)]
