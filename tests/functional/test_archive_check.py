"""`clickstream archive check` on an archive in the local stack's S3 (moto): the lines written
before the strict JSON rule (issue 44) found, by object, line and session."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import uuid

from clickstream.kernel import aws
from clickstream.local.stack import LocalStackState

HOUR_09 = "raw/year=2026/month=11/day=20/hour=09/shardId-000000000000-1.jsonl.gz"
HOUR_10 = "raw/year=2026/month=11/day=20/hour=10/shardId-000000000000-7.jsonl.gz"


def line(number: int, session: str, tail: str = "") -> bytes:
    return (
        f'{{"event_id":"e-{number}","type":"click","session_id":"{session}","page":"/p",'
        f'"timestamp":"2026-11-20T09:0{number % 10}:00.000Z"{tail}}}'
    ).encode()


def test_the_lines_a_strict_reader_refuses_are_found_by_object_line_and_session(
    local_stack: LocalStackState,
) -> None:
    # GIVEN an archive of two hours: hour 09 clean, hour 10 holding what the collector and
    # the workers wrote before the rule (Infinity from 1e400, NaN from a producer, a lone
    # surrogate escape) among good lines
    s3 = aws.local_client("s3", local_stack.moto_endpoint, local_stack.region)
    bucket = f"check-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    clean = [line(n, "s-clean") for n in range(5)]
    s3.put_object(Bucket=bucket, Key=HOUR_09, Body=gzip.compress(b"\n".join(clean) + b"\n"))
    mixed = [
        line(10, "s-ok"),
        line(11, "s-infinity", ',"properties":{"n":Infinity}'),
        line(12, "s-ok"),
        line(13, "s-nan", ',"properties":{"n":NaN}'),
        line(14, "s-surrogate", ',"properties":{"k":"\\ud800"}'),
    ]
    s3.put_object(Bucket=bucket, Key=HOUR_10, Body=gzip.compress(b"\n".join(mixed) + b"\n"))
    env = {
        **os.environ,
        **local_stack.environment(),
        "CLICKSTREAM_ARCHIVE_BUCKET": bucket,
    }

    def check(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "clickstream.cli", "archive", "check", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    # WHEN the whole archive is checked
    found = check("--json")
    # THEN it exits 3 and names the one object, its three refused lines and their sessions
    assert found.returncode == 3, found.stderr
    report = json.loads(found.stdout)
    assert (report["objects_read"], report["lines_read"], report["lines_refused"]) == (2, 10, 3)
    (refusing,) = report["objects"]
    assert refusing["key"] == HOUR_10
    assert refusing["session_ids"] == ["s-infinity", "s-nan", "s-surrogate"]
    assert [(s["line"], s["reason"], s["event_id"]) for s in refusing["samples"]] == [
        (2, "not_json", "e-11"),
        (4, "not_json", "e-13"),
        (5, "not_json", "e-14"),
    ]
    assert "unpaired surrogate \\ud800" in refusing["samples"][2]["detail"]
    # AND the table names them too
    table = check()
    assert table.returncode == 3
    assert "3 lines refused in 1 object" in table.stdout
    assert "s-surrogate" in table.stdout
    # AND hours before --since are neither listed nor read; a clean span exits 0
    assert json.loads(check("--since", "2026-11-20T10:00Z", "--json").stdout)["objects_read"] == 1
    assert check("--since", "2026-11-20T11:00Z").returncode == 0
