"""The `clickstream` command line (typer + rich): one module per command group.

Results go to stdout (a table, or one JSON object with --json); progress, logs and errors go
to stderr. Errors the project raises on purpose print as one line and exit 1.
"""

from __future__ import annotations

from typing import Annotated

import typer

from clickstream.cli import (
    archive,
    collect,
    compact,
    consume,
    dashboard,
    deadletters,
    demo,
    forget,
    funnel,
    goals,
    heatmap,
    local,
    paths,
    produce,
    query,
    report,
    retention,
    sql,
    tools,
)

app = typer.Typer(
    help="Real-time clickstream analytics on Amazon Kinesis.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(local.app, name="local")
app.command()(produce.produce)
app.command()(consume.consume)
app.command()(collect.collect)
app.command()(consume.health)
app.add_typer(query.app, name="query")
app.add_typer(deadletters.app, name="deadletters")
app.command()(sql.sql)
app.command()(report.report)
app.command()(goals.goals)
app.command()(funnel.funnel)
app.command()(paths.paths)
app.command()(retention.retention)
app.add_typer(archive.app, name="archive")
app.command()(heatmap.heatmap)
app.command()(compact.compact)
app.command()(forget.forget)
app.command()(dashboard.dashboard)
app.command()(demo.demo)
app.add_typer(tools.anomalies_app, name="anomalies")
app.command()(tools.bench)
app.command()(tools.soak)


@app.callback()
def main(
    log_level: Annotated[
        str, typer.Option(help="Log level of the JSON logs on stderr.")
    ] = "WARNING",
) -> None:
    from clickstream.kernel.logging import configure_logging

    configure_logging(log_level)
