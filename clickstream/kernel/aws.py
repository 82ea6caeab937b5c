"""boto3 client construction in one place: region, endpoints and retry policy.

Endpoints come from the standard `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>`
environment variables (boto3 reads them itself), or explicitly for the local stack.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

LOCAL_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
"""Any credentials work with the emulators; these dummy ones keep boto3 from looking further."""


def client(
    service: str,
    *,
    region: str | None = None,
    endpoint_url: str | None = None,
    local: bool = False,
    max_attempts: int = 3,
    timeout_seconds: float = 10.0,
    max_connections: int = 10,
    parameter_validation: bool = True,
) -> Any:
    """A boto3 client with standard retries and bounded timeouts.

    `max_connections` must cover the threads sharing the client, or urllib3 opens and
    throws away a connection per extra thread and warns each time. `parameter_validation`
    off skips botocore's check of every request against the service model (a quarter of a
    small call's CPU): for the workers' writes, whose shapes are built and tested by us and
    which the service validates anyway.
    """
    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=timeout_seconds,
        read_timeout=timeout_seconds,
        max_pool_connections=max_connections,
        parameter_validation=parameter_validation,
    )
    kwargs: dict[str, Any] = {"region_name": region, "config": config}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    if local:
        kwargs.update(LOCAL_CREDENTIALS)
    # One Session per client: boto3's default session is not thread-safe.
    make_client: Any = boto3.session.Session().client  # typed per service; ours is dynamic
    return make_client(service, **kwargs)


def object_or_none(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """S3 GetObject's answer, None when the key does not exist (other errors raised)."""
    try:
        answer: dict[str, Any] = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
            return None
        raise
    return answer


def local_client(service: str, endpoint_url: str, region: str, **options: Any) -> Any:
    """A client for one of the local stack's emulators, with dummy credentials."""
    return client(service, endpoint_url=endpoint_url, region=region, local=True, **options)


def shard_ids(kinesis: Any, stream: str, *, open_only: bool = False) -> list[str]:
    """The stream's shards; `open_only` leaves out those a reshard closed."""
    ids: list[str] = []
    for page in kinesis.get_paginator("list_shards").paginate(StreamName=stream):
        ids += [
            shard["ShardId"]
            for shard in page.get("Shards", [])
            if not open_only or "EndingSequenceNumber" not in shard.get("SequenceNumberRange", {})
        ]
    return ids
