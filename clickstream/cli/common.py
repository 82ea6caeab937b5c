"""What every command shares: the two consoles, `--json`, one-line errors, where to read."""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from botocore.exceptions import BotoCoreError
from pydantic_core import ValidationError
from rich.console import Console

from clickstream.kernel.errors import ClickstreamError, ConfigurationError
from clickstream.kernel.timestamps import from_iso

if TYPE_CHECKING:
    from clickstream.cli.target import StackTarget

# Each command imports what it uses when it runs (boto3, the local stack, DuckDB, Starlette):
# `clickstream --help` and a query start at once. tests/unit/test_cli_startup.py holds it.

P = ParamSpec("P")
R = TypeVar("R")

out = Console(soft_wrap=True)
"""Results: stdout."""
err = Console(stderr=True, soft_wrap=True)
"""Progress, notes and errors: stderr."""

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]


def one_line_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the project's own errors (and bad settings) into one line on stderr and exit 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ClickstreamError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except BotoCoreError as exc:  # no region, no credentials, endpoint unreachable
            err.print(f"[bold red]error:[/] AWS: {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            err.print(f"[bold red]error:[/] setting {where}: {first['msg']}", soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def maybe(value: float | None) -> str:
    """A figure, or a dash where there is none."""
    return "-" if value is None else f"{value:g}"


def given(**options: object) -> dict[str, object]:
    """The options a user gave (those not None): overrides for a settings model."""
    return {name: value for name, value in options.items() if value is not None}


def span_back(text: str, now: datetime) -> datetime | None:
    """A span back from now (90m, 6h, 2d) as a time, or None when `text` is no span."""
    span = re.fullmatch(r"(\d+)([mhd])", text)
    if span is None:
        return None
    unit = {"m": "minutes", "h": "hours", "d": "days"}[span.group(2)]
    return now - timedelta(**{unit: int(span.group(1))})


def since_time(text: str, now: datetime) -> datetime:
    """`--since`: a span back from now (90m, 24h, 7d) or an ISO 8601 time (UTC if no offset)."""
    start = span_back(text, now)
    if start is not None:
        return start
    try:
        return from_iso(text)
    except ValueError:
        raise ConfigurationError(
            f"--since {text!r}: expected a span like 90m, 24h, 7d or an ISO 8601 time"
        ) from None


def again_in_local_stack(defaults: Mapping[str, str] | None = None) -> NoReturn:
    """Run this very command again, without `--local`, in the running local stack's
    environment, as `env $(clickstream local env) clickstream ...` would: a worker's or a
    collector's whole process tree (the KCL daemon, its record processors, boto3's and
    aiobotocore's chains) is configured by the environment it starts with, as ECS configures
    it, so `consume --local` and `collect --local` start with the stack's rather than write
    their own. The process is replaced (the same pid, so whoever started it still holds it).
    `defaults` are set where neither the stack nor the caller's environment sets them (the
    local lease timings, the local write key)."""
    from clickstream.local import state as local_stack
    from clickstream.local.settings import LocalStackSettings

    stack = local_stack.running_state(LocalStackSettings()).environment()
    environment = {**(defaults or {}), **os.environ, **stack}
    arguments = [argument for argument in sys.argv[1:] if argument != "--local"]
    sys.stdout.flush()
    sys.stderr.flush()
    command = [sys.executable, "-m", "clickstream.cli", *arguments]
    os.execve(sys.executable, command, environment)  # noqa: S606 (our own interpreter, no shell)


def tables_target() -> StackTarget:
    """The stack whose tables a query reads: the one CLICKSTREAM_PAGE_STATS_TABLE and the
    other outputs name, else the running local stack."""
    from clickstream.cli.target import stack_target

    return stack_target("page_stats_table", "tables")


def progress_bar(label: str, *, quiet: bool) -> Any:
    """A bar on stderr for long work (`{task.description}` in `label` names the current
    step), hidden with --json or when stderr is no terminal."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=quiet or not err.is_terminal,
    )
