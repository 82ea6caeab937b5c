"""`clickstream consume` (one worker) and `clickstream health` (its container health check)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clickstream.cli.common import again_in_local_stack, err, one_line_errors, out
from clickstream.kernel.errors import ConfigurationError

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings


def other_settings() -> tuple[type[BaseSettings], ...]:
    """The other commands' settings that share the `CLICKSTREAM_` prefix: a shell prepared
    for every command (`eval "$(clickstream local env)"`) must not be refused as full of
    typos."""
    from clickstream.local.settings import LocalStackSettings
    from collector.settings import CollectorSettings
    from insights.settings import DashboardSettings, LakeSettings
    from producer.settings import ProducerSettings

    return (
        ProducerSettings,
        LocalStackSettings,
        CollectorSettings,
        DashboardSettings,
        LakeSettings,
    )


@one_line_errors
def consume(
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="Target the running local stack, with lease timings short enough for it.",
        ),
    ] = False,
    worker_id: Annotated[
        str | None, typer.Option(help="Lease owner name (default: host-pid); unique per worker.")
    ] = None,
) -> None:
    """Run one worker: the KCL MultiLangDaemon and clickstream's record processor, until
    SIGTERM/SIGINT, which every shard answers with a final flush and checkpoint."""
    from clickstream.kernel.logging import configure_logging
    from consumer.daemon import DaemonRunner
    from consumer.properties import LOCAL_TIMINGS
    from consumer.settings import load_settings

    if local:
        again_in_local_stack(defaults=LOCAL_TIMINGS)
    settings = load_settings(other_settings())
    if worker_id:  # the daemon hands it on to the record processors (`DaemonRunner`)
        settings = settings.model_copy(update={"worker_id": worker_id})
    configure_logging(settings.log_level)
    code = DaemonRunner(settings).run()
    if code:
        err.print(f"[bold red]error:[/] the KCL daemon ended with status {code}", soft_wrap=True)
    raise typer.Exit(code)


@one_line_errors
def health(
    max_age: Annotated[
        float, typer.Option(min=1, help="Seconds since the worker last touched its file.")
    ] = 60.0,
    collector: Annotated[
        bool, typer.Option("--collector", help="Check this container's collector instead.")
    ] = False,
) -> None:
    """Exit 0 if this container's worker is running its KCL daemon (the container health
    check): the file `CLICKSTREAM_HEALTH_FILE` was touched within `--max-age` seconds.
    With --collector: the collector on this host answers /health."""
    if collector:
        collector_health()
        return
    path = os.environ.get("CLICKSTREAM_HEALTH_FILE")
    if not path:
        raise ConfigurationError("CLICKSTREAM_HEALTH_FILE is not set: no health file to check")
    try:
        age = time.time() - Path(path).stat().st_mtime
    except FileNotFoundError:
        raise ConfigurationError(f"unhealthy: {path} does not exist (worker not running)") from None
    if age > max_age:
        raise ConfigurationError(f"unhealthy: {path} last touched {age:.0f} s ago")
    out.print(f"healthy: {path} touched {age:.0f} s ago")


def collector_health() -> None:
    import httpx

    from collector.settings import CollectorSettings

    url = f"http://127.0.0.1:{CollectorSettings().port}/health"
    try:
        response = httpx.get(url, timeout=3)
    except httpx.HTTPError as exc:
        raise ConfigurationError(f"unhealthy: {url}: {exc}") from None
    if response.status_code != 200:
        raise ConfigurationError(f"unhealthy: {url} answered {response.status_code}")
    out.print(f"healthy: {url}")
