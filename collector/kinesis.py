"""The collector's one AWS edge: aiobotocore's Kinesis client, PutRecords and a readiness probe."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from clickstream.kernel.logging import get_logger
from collector.intake import StreamRecord

log = get_logger(component="collector.kinesis")

READY_STATUSES = frozenset({"ACTIVE", "UPDATING"})
"""A stream takes PutRecords in these states (UPDATING: a reshard in progress)."""


@contextlib.asynccontextmanager
async def kinesis_client(
    region: str | None, *, max_connections: int, timeout_seconds: float = 5.0
) -> AsyncIterator[Any]:
    """An aiobotocore Kinesis client. The endpoint comes from `AWS_ENDPOINT_URL_KINESIS` /
    `AWS_ENDPOINT_URL` when set (the local stack), credentials from the default chain (the
    task role on ECS). Retries stay few: the deliverer sends failed entries again itself."""
    config = AioConfig(
        retries={"mode": "standard", "max_attempts": 2},
        connect_timeout=timeout_seconds,
        read_timeout=timeout_seconds,
        max_pool_connections=max_connections,
    )
    async with get_session().create_client("kinesis", region_name=region, config=config) as client:
        yield client


class KinesisStream:
    def __init__(self, client: Any, stream_name: str) -> None:
        self._client = client
        self.stream_name = stream_name

    async def put_records(self, records: Sequence[StreamRecord]) -> list[str | None]:
        response = await self._client.put_records(
            StreamName=self.stream_name,
            Records=[{"Data": r.data, "PartitionKey": r.partition_key} for r in records],
        )
        return [entry.get("ErrorCode") for entry in response["Records"]]

    async def ready(self) -> tuple[bool, str]:
        """Whether the stream answers and takes records, and its status in a word. The why
        of a failure goes to the log only: `/ready` is public, and the error names endpoints
        (in AWS, an access-denied text names the account and the role)."""
        try:
            summary = await self._client.describe_stream_summary(StreamName=self.stream_name)
        except Exception as exc:  # unreachable, no such stream, no permission: all "not ready"
            log.warning("stream not ready", error=f"{type(exc).__name__}: {str(exc)[:500]}")
            return False, "UNREACHABLE"
        status = summary["StreamDescriptionSummary"]["StreamStatus"]
        return status in READY_STATUSES, status
