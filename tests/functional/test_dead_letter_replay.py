"""Dead letters of a malformed producer, replayed through a fix: the real record processor
(amazon_kclpy's protocol, in-memory sinks) made them, `clickstream deadletters replay` puts
them back into a stream of kinesis-mock, and the processor counts each event once, however
often they are replayed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from clickstream.kernel import aws
from clickstream.kernel.events import ClickEvent
from clickstream.local.stack import LocalStackState
from clickstream.tools.streamread import read_stream
from insights.dead_letters import MARK_PREFIX
from producer.generator import TrafficProfile, generate
from producer.manifest import build_manifest
from tests.functional.test_real_traffic import archived, run
from tests.support.collector import new_stream

NOW = datetime.now(UTC).replace(microsecond=0)


def as_the_producer_wrote_it(event: ClickEvent) -> bytes:
    """The producer's bug: `sessionId`, not `session_id`."""
    values = json.loads(event.to_record())
    values["sessionId"] = values.pop("session_id")
    return json.dumps(values).encode()


def replay(state: LocalStackState, bucket: str, stream: str, *options: str) -> dict[str, Any]:
    answer = subprocess.run(
        [sys.executable, "-m", "clickstream.cli", "deadletters", "replay", "--stream", stream,
         "--since", "2h", "--json", *options],
        env={**os.environ, **state.environment(), "CLICKSTREAM_ARCHIVE_BUCKET": bucket},
        capture_output=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr.decode()[-3000:]
    figures: dict[str, Any] = json.loads(answer.stdout)
    return figures


def counted(payloads: list[tuple[bytes, str]]) -> dict[str, int]:
    """Events per session, as the record processor counts them."""
    _, _, store, _ = run(payloads)
    return {session: int(item["events"]) for session, item in store.sessions.items()}


def test_dead_letters_replayed_through_a_fix_are_counted_once(
    local_stack: LocalStackState,
) -> None:
    # GIVEN a producer's events that all broke the contract: dead letters of the processor
    records, anomalies = generate(
        31, NOW - timedelta(minutes=20), 400, TrafficProfile(malformed=0, sessions_per_minute=60)
    )
    events = [r for r in records if isinstance(r, ClickEvent)]
    manifest = build_manifest(events, anomalies, seed=31, source="test")
    _, _, store, archive = run([(as_the_producer_wrote_it(e), e.session_id) for e in events])
    assert store.sessions == {}
    letters = archived(archive, "dead-letter/")
    assert Counter(line["reason"] for line in letters) == {"missing_field": len(events)}
    s3 = aws.local_client("s3", local_stack.moto_endpoint, local_stack.region)
    bucket = f"replaytest-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    for key, body in archive.objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    stream = new_stream(local_stack, shards=2)
    kinesis = aws.local_client("kinesis", local_stack.kinesis_endpoint, local_stack.region)
    want = {session: truth.events for session, truth in manifest.sessions.items()}

    # WHEN they are replayed without a fix: nothing goes in, each says why
    unfixed = replay(local_stack, bucket, stream)
    assert (unfixed["replayed"], unfixed["still_invalid"]) == (0, len(events))
    assert unfixed["left"][0]["why"].startswith("missing_field")
    # AND through the fix: every one goes in, keyed by its session
    first = replay(local_stack, bucket, stream, "--rename", "sessionId=session_id")
    assert first["replayed"] == len(events)
    in_stream = read_stream(kinesis, stream)
    assert len(in_stream) == len(events)
    assert all(json.loads(r.data)["session_id"] == r.partition_key for r in in_stream)
    # THEN the processor counts each event once: the manifest's sessions
    assert counted([(r.data, r.partition_key) for r in in_stream]) == want

    # AND a second replay skips them all (they are marked) and puts nothing
    second = replay(local_stack, bucket, stream, "--rename", "sessionId=session_id")
    assert (second["replayed"], second["already_replayed"]) == (0, len(events))
    assert len(read_stream(kinesis, stream)) == len(events)

    # AND replayed again with the marks gone, the stream holds each twice, counted once
    marks = s3.list_objects_v2(Bucket=bucket, Prefix=f"{MARK_PREFIX}/")["Contents"]
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": m["Key"]} for m in marks]})
    again = replay(local_stack, bucket, stream, "--rename", "sessionId=session_id")
    assert again["replayed"] == len(events)
    twice = read_stream(kinesis, stream)
    assert len(twice) == 2 * len(events)
    assert counted([(r.data, r.partition_key) for r in twice]) == want


def test_list_counts_by_reason_with_samples(local_stack: LocalStackState) -> None:
    records, _ = generate(
        32, NOW - timedelta(minutes=20), 50, TrafficProfile(malformed=0, sessions_per_minute=60)
    )
    events = [r for r in records if isinstance(r, ClickEvent)]
    payloads = [(as_the_producer_wrote_it(e), e.session_id) for e in events]
    payloads += [(b"not json", "k"), (b'{"a": 1}', "k")]
    _, _, _, archive = run(payloads)
    s3 = aws.local_client("s3", local_stack.moto_endpoint, local_stack.region)
    bucket = f"replaytest-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    for key, body in archive.objects.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    answer = subprocess.run(
        [sys.executable, "-m", "clickstream.cli", "deadletters", "list", "--json"],
        env={**os.environ, **local_stack.environment(), "CLICKSTREAM_ARCHIVE_BUCKET": bucket},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert answer.returncode == 0, answer.stderr.decode()[-3000:]
    reasons = {row["reason"]: row for row in json.loads(answer.stdout)["reasons"]}
    assert reasons["missing_field"]["count"] == len(events) + 1
    assert reasons["not_json"]["count"] == 1
    assert reasons["missing_field"]["samples"][0]["data"].startswith("{")
    assert all(row["replayed"] == 0 for row in reasons.values())


@pytest.fixture(autouse=True)
def _no_stream_name_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLICKSTREAM_STREAM_NAME", raising=False)
