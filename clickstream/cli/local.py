"""`clickstream local ...`: the local AWS stack (emulators on loopback, the template deployed)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from clickstream.cli.common import JsonFlag, err, one_line_errors, out, print_json

app = typer.Typer(
    help="The local AWS stack: emulators on loopback, the template deployed.", no_args_is_help=True
)


@app.command("up")
@one_line_errors
def local_up(
    as_json: JsonFlag = False,
    shards: Annotated[int | None, typer.Option(help="Stream shard count.")] = None,
    collector: Annotated[
        bool,
        typer.Option(
            "--collector",
            help="Also start the HTTP collector on loopback (CLICKSTREAM_LOCAL_COLLECTOR_PORT).",
        ),
    ] = False,
) -> None:
    """Start the emulators, deploy infra/cloudformation.yaml through CloudFormation, wait."""
    from clickstream.local import stack as local_stack
    from clickstream.local.settings import LocalStackSettings

    overrides = {"shard_count": shards} if shards else {}
    settings = LocalStackSettings(**overrides)  # type: ignore[arg-type]
    with err.status("starting the local stack (kinesis-mock, moto) and deploying the template"):
        state = local_stack.up(settings, collector=collector)
    if as_json:
        print_json(
            {
                "endpoints": {e.name: e.endpoint for e in state.emulators},
                "outputs": state.outputs,
                "applied_locally": state.applied_locally,
                "state_dir": str(settings.state_dir),
            }
        )
        return
    table = Table(title=f"local stack {state.stack_name}: CREATE_COMPLETE")
    table.add_column("output")
    table.add_column("value", overflow="fold")
    for emulator in state.emulators:
        table.add_row(f"endpoint ({emulator.name})", emulator.endpoint)
    for key, value in state.outputs.items():
        table.add_row(key, value)
    out.print(table)
    for item in state.applied_locally:
        err.print(f"applied locally (the emulator ignored it in the template): {item}")
    if collector:
        err.print(f"collector write key (local only): {settings.write_key}")
    err.print('next: eval "$(clickstream local env)" to point boto3, the AWS CLI and KCL here')


@app.command("down")
@one_line_errors
def local_down(as_json: JsonFlag = False) -> None:
    """Stop the emulators; their data goes with them."""
    from clickstream.local import stack as local_stack
    from clickstream.local.settings import LocalStackSettings

    stopped = local_stack.down(LocalStackSettings())
    if as_json:
        print_json({"stopped": stopped})
    else:
        out.print(f"stopped: {', '.join(stopped)}" if stopped else "no local stack was running")


@app.command("status")
@one_line_errors
def local_status(as_json: JsonFlag = False) -> None:
    """Whether the emulators run and answer, and the stack's status."""
    from clickstream.local import stack as local_stack
    from clickstream.local.settings import LocalStackSettings

    report = local_stack.status(LocalStackSettings())
    if as_json:
        print_json(report)
    elif not report.get("emulators"):
        out.print("no local stack is running")
    else:
        table = Table(title=f"local stack {report['stack_name']}: {report['stack_status']}")
        for column in ("emulator", "pid", "endpoint", "process", "answers"):
            table.add_column(column)
        for e in report["emulators"]:
            table.add_row(e["name"], str(e["pid"]), e["endpoint"], e["process"], str(e["answers"]))
        out.print(table)
    if not report["running"]:
        raise typer.Exit(3)


@app.command("env")
@one_line_errors
def local_env(as_json: JsonFlag = False) -> None:
    """`export` lines for boto3, the AWS CLI, the KCL and clickstream: eval "$(... env)"."""
    from clickstream.local import stack as local_stack
    from clickstream.local.settings import LocalStackSettings

    environment = local_stack.running_state(LocalStackSettings()).environment()
    if as_json:
        print_json(environment)
        return
    for name, value in environment.items():
        sys.stdout.write(f"export {name}={value}\n")
