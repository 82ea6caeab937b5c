"""Helpers to run the local stack in tests: free loopback ports, a private state dir."""

from __future__ import annotations

import socket
from pathlib import Path

from clickstream.local import processes
from clickstream.local.settings import LOOPBACK, LocalStackSettings


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


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
