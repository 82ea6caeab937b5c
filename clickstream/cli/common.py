"""What every command shares: the two consoles, `--json`, one-line errors, where to read."""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from botocore.exceptions import BotoCoreError
from pydantic_core import ValidationError
from rich.console import Console

from clickstream.kernel.errors import ClickstreamError, ConfigurationError
from clickstream.kernel.timestamps import from_iso

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


def use_local_stack_environment() -> None:
    """Point this process at the running local stack, as `eval "$(clickstream local env)"`."""
    from clickstream.local import state as local_stack
    from clickstream.local.settings import LocalStackSettings

    os.environ.update(local_stack.running_state(LocalStackSettings()).environment())


def results_clients() -> tuple[Any, Any, dict[str, str]]:
    """DynamoDB and Kinesis clients and the names to read: from settings, else the local stack."""
    from clickstream.kernel import aws
    from clickstream.local import state as local_stack
    from clickstream.local.settings import LocalStackSettings

    if "CLICKSTREAM_PAGE_STATS_TABLE" not in os.environ:
        if local_stack.load_state(LocalStackSettings()) is None:
            raise ConfigurationError(
                "no tables to read: set CLICKSTREAM_PAGE_STATS_TABLE, CLICKSTREAM_SESSIONS_TABLE "
                "and CLICKSTREAM_STREAM_NAME (the stack's outputs), or start the local stack"
            )
        use_local_stack_environment()
    names = {
        key: os.environ.get(f"CLICKSTREAM_{key.upper()}", "")
        for key in ("page_stats_table", "sessions_table", "stream_name", "alerts_table")
    }
    return aws.client("dynamodb"), aws.client("kinesis"), names


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
