"""How much memory this process may use: what the collector's budget and compaction's DuckDB
size themselves from."""

from __future__ import annotations

from pathlib import Path

import psutil


def memory_limit_bytes() -> int:
    """The container's memory limit (cgroup v2, then v1; ECS sets it from the task's memory),
    else the machine's memory."""
    for limit_file in (
        Path("/sys/fs/cgroup/memory.max"),
        Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
    ):
        try:
            text = limit_file.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # v1 writes a huge number for "none"
            return int(text)
    return int(psutil.virtual_memory().total)
