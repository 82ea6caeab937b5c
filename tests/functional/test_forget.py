"""`clickstream forget` on the emulators: after it, no byte of the person's events is in any
object of the bucket, in any DynamoDB item, or counted in a session; everything else is as it
was; a run killed mid-way and run again finishes with the right receipt."""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import pytest

from clickstream import aws
from clickstream.events import ClickEvent, DeadLetterReason, InvalidEvent
from clickstream.local.stack import LocalStackState
from consumer.core.batch import DeadLetter, archive_objects
from consumer.core.positions import Position
from insights import sql
from insights.compaction import Compactor
from insights.settings import LakeSettings
from tests.support.archive import seed_hours
from tests.support.manifest_gate import ManifestGate

START = datetime(2026, 11, 20, 9, 58, 30, tzinfo=UTC)
HOURS = [datetime(2026, 11, 20, 9, tzinfo=UTC), datetime(2026, 11, 20, 10, tzinfo=UTC)]
SETTINGS = LakeSettings(memory_limit="256MB")


@dataclass
class World:
    state: LocalStackState
    s3: Any
    dynamodb: Any
    location: sql.ArchiveLocation
    events: list[ClickEvent]
    person: ClickEvent
    """An event of the person: their user id, anonymous id and session."""

    @property
    def bucket(self) -> str:
        return self.location.bucket

    def sessions_of_person(self) -> set[str]:
        """The user id's sessions, their ids' sessions, and so on."""
        users, anonymous, sessions = {self.person.user_id}, set(), set()
        while True:
            found = {
                e.session_id
                for e in self.events
                if e.user_id in users or e.anonymous_id in anonymous or e.session_id in sessions
            }
            if found == sessions:
                return sessions
            sessions = found
            users |= {e.user_id for e in self.events if e.session_id in found and e.user_id}
            anonymous |= {e.anonymous_id for e in self.events if e.session_id in found}

    def counted(self) -> Counter[str]:
        """Events per session in the `events` view."""
        connection = sql.connect(self.location, self.s3)
        _, rows = sql.run(connection, "SELECT session_id, count(*) FROM events GROUP BY 1")
        return Counter({str(session): int(n) for session, n in rows})

    def forget(self, *extra: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "clickstream.cli", "forget", "--user-id",
             str(self.person.user_id), "--json", *extra],
            env=self.environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip

    def environment(self, s3_endpoint: str | None = None) -> dict[str, str]:
        env = {**os.environ, **self.state.environment(), "CLICKSTREAM_ARCHIVE_BUCKET": self.bucket}
        env["CLICKSTREAM_LAKE_MEMORY_LIMIT"] = "256MB"
        if s3_endpoint:
            env["AWS_ENDPOINT_URL_S3"] = s3_endpoint
        return env


def every_byte(world: World) -> list[tuple[str, bytes]]:
    """Every version of every object, as text a reader sees: gzip inflated, Parquet rows."""
    found = []
    versions = world.s3.list_object_versions(Bucket=world.bucket).get("Versions", [])
    for version in versions:
        key = version["Key"]
        body = world.s3.get_object(Bucket=world.bucket, Key=key, VersionId=version["VersionId"])[
            "Body"
        ].read()
        if key.endswith(".gz"):
            body = gzip.decompress(body)
            if key.startswith("dead-letter/"):
                body += b"".join(
                    base64.b64decode(json.loads(line)["data_base64"])
                    for line in body.splitlines()
                    if line
                )
        elif key.endswith(".parquet"):
            path = f"/tmp/forget-{uuid.uuid4().hex}.parquet"
            with open(path, "wb") as file:
                file.write(body)
            rows = duckdb.connect().execute(f"SELECT * FROM read_parquet('{path}')").fetchall()
            os.unlink(path)
            body = repr(rows).encode()
        found.append((key, body))
    return found


@pytest.fixture
def world(local_stack: LocalStackState) -> World:
    s3 = aws.local_client("s3", local_stack.moto_endpoint, local_stack.region)
    bucket = f"forgettest-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    manifest, per_shard = seed_hours(s3, bucket, seed=47, start=START, count=3000)
    events = [item.event for shard in per_shard for item in shard]
    assert isinstance(events[0], ClickEvent)
    users = Counter(e.user_id for e in events if e.user_id)
    person = next(e for e in events if e.user_id == users.most_common(1)[0][0])
    location = sql.ArchiveLocation(
        bucket, local_stack.region, "test", "test", endpoint_url=local_stack.moto_endpoint
    )
    compactor = Compactor(s3, location, SETTINGS)
    assert compactor.compact(HOURS[0]).outcome == "compacted"  # hour 10 stays raw only
    # A dead letter that carries the person's anonymous id, and one that does not.
    letters = [
        DeadLetter(
            Position(n),
            "k",
            START,
            json.dumps({"anonymousId": anonymous, "event": "x"}).encode(),
            InvalidEvent(DeadLetterReason.MISSING_FIELD, "no session_id", "session_id"),
        )
        for n, anonymous in ((1, person.anonymous_id), (2, "a-someone-else"))
    ]
    for item in archive_objects("shardId-000000000009", [], letters):
        s3.put_object(Bucket=bucket, Key=item.key, Body=item.body)
    dynamodb = aws.local_client("dynamodb", local_stack.moto_endpoint, local_stack.region)
    world = World(local_stack, s3, dynamodb, location, events, person)
    for session in [*world.sessions_of_person(), "s-forget-control"]:
        dynamodb.put_item(
            TableName=local_stack.outputs["SessionsTableName"],
            Item={"session_id": {"S": session}, "events": {"N": "1"}},
        )
        dynamodb.put_item(
            TableName=local_stack.outputs["AlertsTableName"],
            Item={
                "rule": {"S": "bot"},
                "window_subject": {"S": f"2026-11-20T10:00#{session}"},
                "subject": {"S": session},
            },
        )
    assert sum(manifest.sessions[s].events for s in world.sessions_of_person()) > 0
    return world


def assert_forgotten(world: World, before: Counter[str]) -> None:
    sessions = world.sessions_of_person()
    needles = [s.encode() for s in sessions] + [
        str(world.person.user_id).encode(),
        str(world.person.anonymous_id).encode(),
    ]
    for key, body in every_byte(world):
        if key.startswith("forget-receipts/"):
            continue
        assert not any(needle in body for needle in needles), key
    receipts = [k for k, _ in every_byte(world) if k.startswith("forget-receipts/")]
    for key in receipts:
        text = world.s3.get_object(Bucket=world.bucket, Key=key)["Body"].read()
        assert not any(needle in text for needle in needles), key
    tables = world.state.outputs
    for table in (tables["SessionsTableName"], tables["AlertsTableName"]):
        for item in world.dynamodb.scan(TableName=table)["Items"]:
            assert not any(needle.decode() in repr(item) for needle in needles), table
    assert world.dynamodb.get_item(
        TableName=tables["SessionsTableName"], Key={"session_id": {"S": "s-forget-control"}}
    ).get("Item")
    # everything else exactly as before
    expected = Counter({s: n for s, n in before.items() if s not in sessions})
    assert world.counted() == expected


def test_forget_removes_the_person_from_every_store_and_nothing_else(world: World) -> None:
    before = world.counted()
    process = world.forget()
    output, errors = process.communicate(timeout=300)
    assert process.returncode == 0, errors.decode()[-3000:]
    receipt = json.loads(output)
    assert receipt["status"] == "done"
    removed = receipt["removed"]
    sessions = world.sessions_of_person()
    assert removed["sessions"] == len(sessions)
    assert removed["raw_events_removed"] == sum(before[s] for s in sessions)
    assert removed["lake_rows_removed"] > 0
    assert removed["dead_letters_removed"] == 1
    assert removed["session_items_deleted"] == len(sessions)
    assert removed["alerts_deleted"] == len(sessions)
    assert_forgotten(world, before)
    # AND run again it finds nothing more and keeps its receipt
    again = world.forget()
    output, errors = again.communicate(timeout=300)
    assert again.returncode == 0, errors.decode()[-3000:]
    assert json.loads(output)["removed"] == removed


def test_a_forget_killed_mid_way_and_run_again_finishes_with_the_right_receipt(
    world: World,
) -> None:
    before = world.counted()
    dry = world.forget("--dry-run")
    output, errors = dry.communicate(timeout=300)
    assert dry.returncode == 0, errors.decode()[-3000:]
    planned = json.loads(output)["removed"]
    # GIVEN a forget that rewrote the raw archive and is publishing the lake's new hour
    with ManifestGate(world.state.moto_endpoint) as gate:
        process = subprocess.Popen(
            [sys.executable, "-m", "clickstream.cli", "forget", "--user-id",
             str(world.person.user_id), "--json"],
            env=world.environment(gate.endpoint),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )  # fmt: skip
        try:
            gate.wait_for_held(1, timeout=120)
            # WHEN it is killed there
            os.killpg(process.pid, signal.SIGKILL)
        finally:
            process.wait(timeout=30)
            gate.drop_all()
    # THEN run again it finishes, and its receipt says what the dry run said
    again = world.forget()
    output, errors = again.communicate(timeout=300)
    assert again.returncode == 0, errors.decode()[-3000:]
    receipt = json.loads(output)
    assert receipt["status"] == "done"
    assert receipt["runs"] == 2
    assert receipt["removed"] == planned
    assert_forgotten(world, before)
