"""`clickstream collect`: the collector under uvicorn until SIGTERM/SIGINT.

uvicorn answers SIGTERM by closing the listening socket, letting requests in flight finish
(each waits for its events to reach the stream) for up to `shutdown_grace_seconds`, then
running the app's shutdown, which sends whatever is still queued. Nothing accepted is
dropped; a request that arrives after the signal finds no listener and is sent again.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import AsyncIterator

import uvicorn

from clickstream.kernel import aws
from clickstream.kernel.errors import ConfigurationError
from clickstream.stores.suppression import SuppressionList, open_list
from collector.app import Stream, create_app
from collector.kinesis import KinesisStream, kinesis_client
from collector.protocol import guarded_protocol
from collector.settings import CollectorSettings


@contextlib.asynccontextmanager
async def open_kinesis(settings: CollectorSettings) -> AsyncIterator[Stream]:
    assert settings.stream_name is not None  # checked by `serve`
    # botocore reads AWS_DEFAULT_REGION but not AWS_REGION, which some platforms set alone.
    region = settings.region or os.environ.get("AWS_REGION")
    async with kinesis_client(region, max_connections=settings.max_concurrent_puts + 2) as client:
        yield KinesisStream(client, settings.stream_name)


def check(settings: CollectorSettings) -> None:
    if not settings.stream_name:
        raise ConfigurationError(
            "no stream: set CLICKSTREAM_COLLECTOR_STREAM_NAME (or CLICKSTREAM_STREAM_NAME)"
        )
    if not settings.write_keys:
        raise ConfigurationError(
            "no write keys: set CLICKSTREAM_COLLECTOR_WRITE_KEYS (comma-separated; on ECS the "
            "task definition injects it from Secrets Manager)"
        )


def suppression_list(settings: CollectorSettings) -> SuppressionList | None:
    """The suppression list when the stack has one (`CLICKSTREAM_SUPPRESSION_TABLE`)."""
    region = settings.region or os.environ.get("AWS_REGION")
    return open_list(lambda service: aws.client(service, region=region))


def serve(settings: CollectorSettings) -> None:
    check(settings)
    config = uvicorn.Config(
        create_app(settings, open_kinesis, suppression=suppression_list(settings)),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=guarded_protocol(
            head_timeout_seconds=settings.head_timeout_seconds,
            max_head_bytes=settings.max_head_bytes,
        ),
        limit_concurrency=settings.max_connections,
        lifespan="on",
        access_log=False,
        log_config=None,  # our structlog set-up owns logging (JSON on stderr)
        proxy_headers=settings.trusted_proxies is not None,
        forwarded_allow_ips=settings.trusted_proxies,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        server_header=False,
    )
    # uvicorn handles SIGTERM/SIGINT itself (drain, then shutdown), then raises the signal
    # again for whatever handler was there before it. That handler is this no-op, so a drained
    # collector exits 0 instead of dying by the signal it already answered.
    for handled in (signal.SIGTERM, signal.SIGINT):
        signal.signal(handled, lambda number, frame: None)
    uvicorn.Server(config).run()
