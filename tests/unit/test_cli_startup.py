"""The command line starts at once: starting it, `--help` and a query's own start import none
of the heavy modules (cfn-lint and its sympy, DuckDB, Starlette and uvicorn, moto, the
emulator machinery, the worker, the producer's generator). Each command imports what it uses
when it runs. Checked from `sys.modules` in a fresh interpreter, not with a timer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    "cfnlint",
    "sympy",
    "duckdb",
    "starlette",
    "uvicorn",
    "moto",
    "aiobotocore",
    "amazon_kclpy",
    "PIL",
    "clickstream.local.stack",
    "clickstream.local.template",
    "consumer.processor",
    "consumer.daemon",
    "producer.generator",
    "insights.dashboard",
    "insights.sql",
)
"""What no command's start may import."""

NOT_FOR_HELP = (*HEAVY, "boto3", "clickstream.local.settings", "insights.query")
"""`--help` reads no settings and talks to nothing: not even boto3."""

PROBE = """
import json, sys
from clickstream.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
except BaseException:
    pass
sys.stderr.write("MODULES " + json.dumps(sorted(sys.modules)) + "\\n")
"""


def modules_after(tmp_path: Path, *args: str) -> set[str]:
    """The modules loaded once `clickstream ARGS` has run, in a fresh interpreter with no
    local stack to find (its state dir is empty)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "CLICKSTREAM_LOCAL_STATE_DIR": str(tmp_path / "no-stack"),
        },
    )
    line = next((line for line in done.stderr.splitlines() if line.startswith("MODULES ")), None)
    assert line is not None, done.stderr
    return set(json.loads(line.removeprefix("MODULES ")))


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(
        name for name in names if name in modules or any(m.startswith(name + ".") for m in modules)
    )


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("query", "--help"),
        ("local", "--help"),
        ("produce", "--help"),
        ("consume", "--help"),
        ("demo", "--help"),
        ("bench", "--help"),
        ("sql", "--help"),
    ],
)
def test_help_imports_no_heavy_module(tmp_path: Path, args: tuple[str, ...]) -> None:
    # GIVEN a fresh interpreter
    # WHEN the command line prints its help
    modules = modules_after(tmp_path, *args)
    # THEN it imported the command line itself and nothing heavy
    assert "clickstream.cli.query" in modules
    assert loaded(modules, NOT_FOR_HELP) == []


@pytest.mark.parametrize(
    ("args", "reader"),
    [
        (("query", "pages"), "insights.query"),
        (("query", "alerts"), "clickstream.stores.alerts"),
        (("query", "session", "s-1"), "clickstream.stores.sessions"),
    ],
)
def test_a_query_imports_no_heavy_module(
    tmp_path: Path, args: tuple[str, ...], reader: str
) -> None:
    # GIVEN no tables configured and no local stack (the query stops at its first read)
    # WHEN a query runs
    modules = modules_after(tmp_path, *args)
    # THEN it got as far as its reads (boto3 and the store or read side loaded) and no further
    assert reader in modules
    assert "boto3" in modules
    assert loaded(modules, HEAVY) == []
