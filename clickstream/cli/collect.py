"""`clickstream collect`: the HTTP collector (the front door) until SIGTERM/SIGINT."""

from __future__ import annotations

from typing import Annotated

import typer

from clickstream.cli.common import again_in_local_stack, given, one_line_errors


@one_line_errors
def collect(
    host: Annotated[str | None, typer.Option(help="Address to listen on [127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port [8080].")] = None,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="Send to the running local stack's stream, with its write key, any origin.",
        ),
    ] = False,
) -> None:
    """Take events over HTTP (our /v1/events and Segment's tracking API) into the stream;
    each request is answered once its events are in it. Serves the tracker, /clickstream.js."""
    from clickstream.kernel.logging import configure_logging
    from clickstream.local.settings import LocalStackSettings
    from collector.server import serve
    from collector.settings import CollectorSettings

    if local:
        write_key = LocalStackSettings().write_key
        again_in_local_stack(defaults={"CLICKSTREAM_COLLECTOR_WRITE_KEYS": write_key})
    settings = CollectorSettings(**given(host=host, port=port))  # type: ignore[arg-type]
    configure_logging(settings.log_level)
    serve(settings)
