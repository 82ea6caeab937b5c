"""Where the end-to-end tests' time goes: each test's phases (stack up, KCL start to its first
lease, producing, draining to exact, verifying, teardown) appended as JSON lines to one file
per run, and summed at the end of the run (`tests/conftest.py` prints the table).

xdist's workers append to the same file: each line is one small write, which POSIX appends
whole. docs/testing.md reads these tables.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

PHASES_FILE_VARIABLE = "PYTEST_PHASES_FILE"
"""Not CLICKSTREAM_*: the workers refuse settings of that prefix they do not know."""

ORDER = (
    "stack up",
    "KCL start to first lease",
    "producing",
    "draining to exact",
    "verifying",
    "teardown",
)


def record(phase: str, seconds: float) -> None:
    """One phase's seconds, measured by the caller."""
    path = os.environ.get(PHASES_FILE_VARIABLE)
    if not path:
        return
    test = os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0]
    line = json.dumps({"test": test, "phase": phase, "seconds": round(seconds, 2)}) + "\n"
    with open(path, "a", encoding="utf-8") as sink:
        sink.write(line)


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    """Time the block as one phase of the running test (recorded even when it fails)."""
    started = time.monotonic()
    try:
        yield
    finally:
        record(name, time.monotonic() - started)


_TIMESTAMP = re.compile(r'"timestamp": "([^"]+)"')


def record_kcl_starts(logs: Iterable[Path]) -> None:
    """From each worker's log: its daemon's start to its first record processor initialised
    (KCL's start, the lease table, the empty-table wait, the first lease assignment)."""
    for log in logs:
        started = first_lease = None
        try:
            lines = log.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            if started is None and '"event": "starting KCL MultiLangDaemon"' in line:
                started = _time_of(line)
            elif started is not None and '"event": "initialized"' in line:
                first_lease = _time_of(line)
                break
        if started and first_lease:
            record("KCL start to first lease", (first_lease - started).total_seconds())


def _time_of(line: str) -> datetime | None:
    found = _TIMESTAMP.search(line)
    return datetime.fromisoformat(found.group(1).replace("Z", "+00:00")) if found else None


def summary(path: Path) -> list[str]:
    """The run's phases as table lines: total seconds, count, mean, across the tests."""
    totals: dict[str, list[float]] = defaultdict(list)
    tests: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        totals[entry["phase"]].append(float(entry["seconds"]))
        tests.add(entry["test"])
    if not totals:
        return []
    lines = [
        f"phases of {len(tests)} tests (seconds; summed over tests, which overlap under xdist)",
        f"{'phase':<28} {'total':>8} {'count':>6} {'mean':>7} {'max':>7}",
    ]
    for name in [*ORDER, *sorted(set(totals) - set(ORDER))]:
        values = totals.get(name)
        if values:
            lines.append(
                f"{name:<28} {sum(values):8.0f} {len(values):6d} "
                f"{sum(values) / len(values):7.1f} {max(values):7.1f}"
            )
    return lines
