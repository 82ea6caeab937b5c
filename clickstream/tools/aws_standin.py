"""A fast loopback stand-in for Kinesis and DynamoDB, for the benchmarks only.

kinesis-mock answers a PutRecords in milliseconds to tens of milliseconds, which would
measure the emulator rather than the collector; the record processor's bench times what
the AWS SDK itself spends on a DynamoDB call. This answers Kinesis' PutRecords (every entry
stored, nothing kept) and DescribeStreamSummary, and DynamoDB's PutItem (nothing kept), at
once. Run: `python -m clickstream.tools.aws_standin PORT`, or `running()` from Python.
"""

from __future__ import annotations

import itertools
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clickstream.kernel.errors import ClickstreamError
from clickstream.local.settings import LOOPBACK

_sequence = itertools.count(1)
JSON_TYPE = "application/x-amz-json-1.1"
DYNAMODB_JSON_TYPE = "application/x-amz-json-1.0"


async def answer(request: Request) -> Response:
    service, _, target = request.headers.get("x-amz-target", "").rpartition(".")
    if service.startswith("DynamoDB"):
        if target != "PutItem":
            return Response(json.dumps({"__type": "UnknownOperationException"}), 400)
        return Response(b"{}", media_type=DYNAMODB_JSON_TYPE)
    body = json.loads(await request.body() or b"{}")
    if target == "PutRecords":
        records = [
            {"SequenceNumber": str(next(_sequence)), "ShardId": "shardId-000000000000"}
            for _ in body["Records"]
        ]
        answer: dict[str, object] = {"FailedRecordCount": 0, "Records": records}
    elif target == "DescribeStreamSummary":
        answer = {
            "StreamDescriptionSummary": {
                "StreamName": body.get("StreamName", "bench"),
                "StreamARN": "arn:aws:kinesis:us-east-1:123456789012:stream/bench",
                "StreamStatus": "ACTIVE",
                "RetentionPeriodHours": 24,
                "StreamCreationTimestamp": 0,
                "EnhancedMonitoring": [],
                "OpenShardCount": 1,
            }
        }
    else:
        return Response(json.dumps({"__type": "UnknownOperationException"}), 400)
    return Response(json.dumps(answer), media_type=JSON_TYPE)


async def ready(request: Request) -> Response:
    return Response(b"ready")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    """Until `url` answers a GET; a clear error if `process` exits first or 30 s pass."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ClickstreamError(f"{what} exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 (loopback)
                return
        except OSError:
            time.sleep(0.1)
    raise ClickstreamError(f"{what} did not answer at {url}")


@contextmanager
def running(log_path: Path) -> Iterator[str]:
    """The stand-in in a process of its own (its CPU is not the caller's); yields its URL."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "clickstream.tools.aws_standin", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://{LOOPBACK}:{port}"
        wait_for(url, process, "the AWS stand-in")
        yield url
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 30 s."""
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> None:
    app = Starlette(
        routes=[Route("/", answer, methods=["POST"]), Route("/", ready, methods=["GET"])]
    )
    uvicorn.run(
        app,
        host=LOOPBACK,
        port=int(sys.argv[1]),
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
