"""`clickstream demo`: the whole pipeline on this machine, checked against the manifest
(`clickstream.cli.demo_run` does it)."""

from __future__ import annotations

from typing import Annotated

import typer

from clickstream.cli.common import JsonFlag, one_line_errors


@one_line_errors
def demo(
    events: Annotated[int, typer.Option(min=1, help="Valid events to produce.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed of the generated traffic.")] = 42,
    workers: Annotated[int, typer.Option(min=1, max=8, help="Worker processes to run.")] = 2,
    keep: Annotated[bool, typer.Option(help="Leave the local stack running afterwards.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """The whole pipeline on this machine: local stack, workers, seeded traffic, summary."""
    from clickstream.cli.demo_run import run_demo

    run_demo(events=events, seed=seed, workers=workers, keep=keep, as_json=as_json)
