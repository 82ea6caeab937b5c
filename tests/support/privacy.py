"""Where a local stack keeps bytes, read whole, to show that none of them is a visitor's
address: the stream's records, every archive object (raw lines ungzipped, the lake's Parquet
read row by row, manifests), every item of every DynamoDB table, and every log file."""

from __future__ import annotations

import gzip
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import duckdb

from clickstream.kernel import aws, dynamo
from clickstream.local.state import LocalStackState
from clickstream.tools.streamread import read_stream


def stored_texts(state: LocalStackState, logs: Path) -> Iterator[tuple[str, str]]:
    """(where, text) of everything the stack stores, and of the log files under `logs`."""
    kinesis = aws.local_client("kinesis", state.kinesis_endpoint, state.region)
    s3 = aws.local_client("s3", state.moto_endpoint, state.region)
    dynamodb = aws.local_client("dynamodb", state.moto_endpoint, state.region)
    for record in read_stream(kinesis, state.outputs["StreamName"]):
        where = f"stream {record.shard_id}/{record.sequence_number}"
        yield where, record.data.decode("utf-8", "replace")
    bucket = state.outputs["ArchiveBucketName"]
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for entry in page.get("Contents", []):
            key = entry["Key"]
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            yield f"s3://{bucket}/{key}", object_text(key, body)
    for table in table_names(dynamodb):
        for item in dynamo.scan_table(dynamodb, table):
            yield f"dynamodb {table}", repr(item)
    for path in sorted(logs.rglob("*.log")):
        yield str(path), path.read_text(errors="replace")


def table_names(dynamodb: object) -> Iterable[str]:
    names: list[str] = []
    for page in dynamodb.get_paginator("list_tables").paginate():  # type: ignore[attr-defined]
        names += page["TableNames"]
    return names


def object_text(key: str, body: bytes) -> str:
    """An archive object as text: gzip undone; a Parquet file's rows, every column (its
    compressed pages would hide an address from a search of its bytes)."""
    if key.endswith(".gz"):
        body = gzip.decompress(body)
    if body[:4] != b"PAR1":
        return body.decode("utf-8", "replace")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "file.parquet"
        path.write_bytes(body)
        rows = duckdb.connect().execute("SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
    return "\n".join(repr(row) for row in rows)


def addresses_found(texts: Iterable[tuple[str, str]], addresses: Iterable[str]) -> list[str]:
    """Where any of `addresses` appears, whole (not inside a longer number; empty:
    nowhere)."""
    patterns = {
        address: re.compile(rf"(?<![0-9A-Fa-f.:]){re.escape(address)}(?![0-9A-Fa-f.:])")
        for address in sorted(set(addresses))
    }
    return [
        f"{address} in {where}"
        for where, text in texts
        for address, pattern in patterns.items()
        if pattern.search(text)
    ]
