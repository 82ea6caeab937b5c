"""A fast loopback stand-in for Kinesis, for the collector's benchmark only.

kinesis-mock answers a PutRecords in milliseconds to tens of milliseconds, which would
measure the emulator rather than the collector. This answers PutRecords (every entry
stored, nothing kept) and DescribeStreamSummary at once. Run: `python -m
clickstream.tools.kinesis_standin PORT`.
"""

from __future__ import annotations

import itertools
import json
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clickstream.local.settings import LOOPBACK

_sequence = itertools.count(1)
JSON_TYPE = "application/x-amz-json-1.1"


async def kinesis(request: Request) -> Response:
    target = request.headers.get("x-amz-target", "").rsplit(".", 1)[-1]
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


def main() -> None:
    app = Starlette(routes=[Route("/", kinesis, methods=["POST"])])
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
