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
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import duckdb
import httpx
import pytest

from clickstream.kernel import aws
from clickstream.kernel.events import (
    ClickEvent,
    DeadLetterReason,
    EventType,
    InvalidEvent,
    decode_event,
)
from clickstream.local.stack import LocalStackState
from clickstream.stores.alerts import Alert, Rule
from clickstream.stores.archive_layout import verdict_key
from clickstream.stores.positions import Position
from clickstream.stores.suppression import SuppressionList
from consumer.core.batch import DeadLetter, archive_objects, verdict_objects
from consumer.core.positioned import PositionedEvent
from insights import archive_views, sql
from insights.compaction import Compactor
from insights.settings import LakeSettings
from tests.functional.test_real_traffic import archived, run
from tests.support.archive import put_objects, seed_hours
from tests.support.collector import (
    WRITE_KEYS,
    basic,
    new_stream,
    own_event,
    running_collector,
    stream_contents,
)
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
    suppression_table: str

    @property
    def bucket(self) -> str:
        return self.location.bucket

    def sessions_of_person(self) -> set[str]:
        """The user id's sessions, their ids' sessions, and so on."""
        users: set[str | None] = {self.person.user_id}
        anonymous: set[str | None] = set()
        sessions: set[str] = set()
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
            users |= {
                str((e.properties or {}).get("previousId"))
                for e in self.events
                if e.session_id in found and (e.properties or {}).get("call") == "alias"
            }
            anonymous |= {e.anonymous_id for e in self.events if e.session_id in found}

    def counted(self) -> Counter[str]:
        """Events per session in the `events` view."""
        connection = archive_views.connect(self.location, self.s3)
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

    def suppression(self) -> dict[str, str]:
        """The test's own suppression list (the session's stack has one for other tests)."""
        return {
            "CLICKSTREAM_SUPPRESSION_TABLE": self.suppression_table,
            "CLICKSTREAM_SUPPRESSION_BUCKET": self.bucket,
            "CLICKSTREAM_SUPPRESSION_REFRESH_SECONDS": "1",
            # Here nothing runs beside forget: the wait is the list's refresh and a second.
            "CLICKSTREAM_SUPPRESSION_SETTLE_SECONDS": "2",
        }

    def environment(self, s3_endpoint: str | None = None) -> dict[str, str]:
        env = {**os.environ, **self.state.environment(), "CLICKSTREAM_ARCHIVE_BUCKET": self.bucket}
        env.update(self.suppression())
        env["CLICKSTREAM_LAKE_MEMORY_LIMIT"] = "256MB"
        if s3_endpoint:
            env["AWS_ENDPOINT_URL_S3"] = s3_endpoint
        return env


OLD_USER_ID = "u-old-handle-of-the-person"


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
    # seed_hours archives ClickEvents (the consumer's folded form is not what it keeps)
    events = cast(list[ClickEvent], [item.event for shard in per_shard for item in shard])
    assert isinstance(events[0], ClickEvent)
    users = Counter(e.user_id for e in events if e.user_id)
    person = next(e for e in events if e.user_id == users.most_common(1)[0][0])
    # The person on a second device too (issue 42): a laptop visit before logging in, and
    # the login, which links the laptop's anonymous id to the person's user id.
    laptop = [
        person.model_copy(
            update={
                "event_id": f"laptop-{n}",
                "session_id": session,
                "anonymous_id": "a-laptop-of-the-person",
                "user_id": user,
                "timestamp": datetime(2026, 11, 20, 10, 20 + n, tzinfo=UTC),
            }
        )
        for n, (session, user) in enumerate(
            (("s-laptop-anonymous", None), ("s-laptop-login", person.user_id))
        )
    ]
    # And an account the person had before, under another user id on another device, which
    # the login's `alias` call names as the person's previous id (Segment's alias).
    laptop += [
        person.model_copy(
            update={
                "event_id": "old-account-1",
                "session_id": "s-old-account",
                "anonymous_id": "a-old-device-of-the-person",
                "user_id": OLD_USER_ID,
                "timestamp": datetime(2026, 11, 20, 10, 5, tzinfo=UTC),
            }
        ),
        person.model_copy(
            update={
                "event_id": "laptop-alias",
                "session_id": "s-laptop-login",
                "anonymous_id": "a-laptop-of-the-person",
                "user_id": person.user_id,
                "type": EventType.CUSTOM,
                "properties": {"call": "alias", "previousId": OLD_USER_ID},
                "timestamp": datetime(2026, 11, 20, 10, 22, tzinfo=UTC),
            }
        ),
    ]
    put_objects(
        s3,
        bucket,
        "shardId-000000000008",
        [
            PositionedEvent(Position(n), e, e.to_record(), e.session_id)
            for n, e in enumerate(laptop, 1)
        ],
    )
    events = [*events, *laptop]
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
    suppression_table = f"{bucket}-suppression"
    dynamodb.create_table(
        TableName=suppression_table,
        AttributeDefinitions=[{"AttributeName": "id_hash", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id_hash", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    world = World(local_stack, s3, dynamodb, location, events, person, suppression_table)
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
        # And the bot rule's verdict on it, as a worker files it.
        judged = Alert(Rule.BOT_SESSION, session, "2026-11-20T10:00", 0.75, None, 0.5)
        for item in verdict_objects([judged]):
            s3.put_object(Bucket=bucket, Key=item.key, Body=item.body)
    assert (
        sum(
            manifest.sessions[s].events
            for s in world.sessions_of_person()
            if s in manifest.sessions
        )
        > 0
    )
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
    for table in (tables["SessionsTableName"], tables["AlertsTableName"], world.suppression_table):
        for item in world.dynamodb.scan(TableName=table)["Items"]:
            assert not any(needle.decode() in repr(item) for needle in needles), table
    assert world.dynamodb.get_item(
        TableName=tables["SessionsTableName"], Key={"session_id": {"S": "s-forget-control"}}
    ).get("Item")
    # everything else exactly as before
    expected = Counter({s: n for s, n in before.items() if s not in sessions})
    assert world.counted() == expected


def test_forget_removes_the_person_from_every_store_and_nothing_else(world: World) -> None:
    # GIVEN the person on two devices, one person in the person map (issue 42)
    reading = archive_views.connect(world.location, world.s3, raw_views=False)
    persons = reading.execute(
        "SELECT list_sort(ids) FROM persons WHERE person_id = ?", [world.person.user_id]
    ).fetchall()
    reading.close()
    assert "a-laptop-of-the-person" in persons[0][0]
    assert world.person.anonymous_id in persons[0][0]
    assert OLD_USER_ID in persons[0][0]  # the alias's previous id
    assert {"s-laptop-anonymous", "s-laptop-login", "s-old-account"} <= (world.sessions_of_person())
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
    assert removed["bot_verdicts_deleted"] == len(sessions)
    assert_forgotten(world, before)
    verdicts = world.s3.list_objects_v2(Bucket=world.bucket, Prefix="verdicts/")["Contents"]
    assert [v["Key"] for v in verdicts] == [
        verdict_key("s-forget-control", datetime(2026, 11, 20, 10, tzinfo=UTC))
    ]
    # AND run again it finds nothing more and keeps its receipt
    again = world.forget()
    output, errors = again.communicate(timeout=300)
    assert again.returncode == 0, errors.decode()[-3000:]
    assert json.loads(output)["removed"] == removed


def test_forget_since_an_hour_reads_and_erases_only_the_hours_from_it(world: World) -> None:
    # GIVEN an earlier hour holding an object no reader can open (a forget of the whole
    # archive fails on it), and the counts of the compacted hour 09
    world.s3.put_object(
        Bucket=world.bucket, Key="raw/year=2026/month=11/day=20/hour=08/bad.jsonl.gz", Body=b"x"
    )
    whole = world.forget("--dry-run")
    _, errors = whole.communicate(timeout=300)
    assert whole.returncode != 0, "the unreadable object was not read"

    def hour_nine() -> Counter[str]:
        connection = archive_views.connect(world.location, world.s3, since=HOURS[0])
        _, rows = sql.run(
            connection, "SELECT session_id, count(*) FROM events WHERE hour = 9 GROUP BY 1"
        )
        return Counter({str(session): int(n) for session, n in rows})

    nine_before = hour_nine()
    person_in_ten = sum(
        1
        for e in world.events
        if e.session_id in world.sessions_of_person() and e.timestamp >= HOURS[1]
    )
    assert person_in_ten > 0
    # WHEN the person is forgotten since 10:00
    process = world.forget("--since", HOURS[1].isoformat())
    output, errors = process.communicate(timeout=300)
    assert process.returncode == 0, errors.decode()[-3000:]
    # THEN hour 10 holds none of their events, and hour 09 is as it was
    assert json.loads(output)["removed"]["raw_events_removed"] == person_in_ten
    connection = archive_views.connect(world.location, world.s3, since=HOURS[1])
    listed = ", ".join(sql.quote(session) for session in world.sessions_of_person())
    _, [(left,)] = sql.run(
        connection,
        f"SELECT count(*) FROM raw_events WHERE session_id IN ({listed})",
    )
    assert left == 0
    assert hour_nine() == nine_before


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


def suppressed_metric(log: Path) -> int:
    """The collector's `EventsSuppressed` so far, from the EMF documents in its log."""
    total = 0
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and '"EventsSuppressed"' in line:
            total += int(json.loads(line)["EventsSuppressed"])
    return total


def test_after_forget_the_persons_later_events_are_dropped_and_counted_until_lifted(
    world: World, tmp_path: Path
) -> None:
    person = world.person
    later = [  # a new session of the user, the anonymous id on its own, the old session's tab
        own_event("later-user", "s-later-1", user_id=person.user_id),
        own_event("later-anonymous", "s-later-2", anonymous_id=person.anonymous_id),
        own_event("later-session", person.session_id),
        own_event("someone-else", "s-someone-else", user_id="u-someone-else"),
    ]
    stream = new_stream(world.state)
    with running_collector(
        world.state,
        stream,
        tmp_path,
        environment=world.suppression(),
        metrics_interval_seconds=0.5,
    ) as collector:
        # GIVEN a collector already running (its list empty) when the person is forgotten
        forgotten = world.forget()
        output, errors = forgotten.communicate(timeout=300)
        assert forgotten.returncode == 0, errors.decode()[-3000:]
        receipt = json.loads(output)
        sessions = world.sessions_of_person()
        users = {e.user_id for e in world.events if e.session_id in sessions and e.user_id}
        anonymous = {e.anonymous_id for e in world.events if e.session_id in sessions}
        # (an alias's previous id may have been either: it is suppressed as both)
        previous = {
            str((e.properties or {}).get("previousId"))
            for e in world.events
            if e.session_id in sessions and (e.properties or {}).get("call") == "alias"
        }
        assert previous == {OLD_USER_ID}
        entries = world.dynamodb.scan(TableName=world.suppression_table)["Items"]
        assert len(entries) == len(sessions) + len(users | previous) + len(anonymous | previous)
        assert receipt["removed"]["ids_suppressed"] == len(entries)
        # WHEN the person's later events reach it
        response = httpx.post(
            f"{collector.url}/v1/events", json=later, headers=basic(WRITE_KEYS[0])
        )
        # THEN they are answered as taken (no retry), kept out of the stream, and counted
        assert (response.status_code, response.json()) == (200, {"success": True})
        taken, _ = stream_contents(world.state, stream)
        assert [decode_event(r.data, None).event_id for r in taken] == ["someone-else"]
        deadline = time.monotonic() + 10
        while suppressed_metric(collector.log) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert suppressed_metric(collector.log) == 3

        # AND the workers drop them too (a producer writing to the stream, a replay of it)
        listed = SuppressionList(
            world.dynamodb,
            world.s3,
            table=world.suppression_table,
            bucket=world.bucket,
            refresh_seconds=1,
        )
        payloads = [(json.dumps(e).encode(), str(e["session_id"])) for e in later]
        _, processor, store, archive = run(payloads, suppression=listed.current)
        assert processor.totals["suppressed"] == 3
        assert [e["event_id"] for e in archived(archive, "raw/")] == ["someone-else"]
        assert set(store.sessions) == {"s-someone-else"}

        # WHEN the suppression is lifted
        lift = subprocess.run(
            [sys.executable, "-m", "clickstream.cli", "forget", "--user-id",
             str(person.user_id), "--lift", "--json"],
            env=world.environment(), capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        assert lift.returncode == 0, lift.stderr.decode()[-3000:]
        assert json.loads(lift.stdout)["lifted"] == len(entries)
        assert world.dynamodb.scan(TableName=world.suppression_table)["Items"] == []
        # THEN the collector, once it read the list again, takes the person's events
        deadline = time.monotonic() + 15
        attempt = 0
        while True:
            attempt += 1
            event = own_event(f"after-lift-{attempt}", "s-later-3", user_id=person.user_id)
            response = httpx.post(
                f"{collector.url}/v1/events", json=[event], headers=basic(WRITE_KEYS[0])
            )
            assert response.status_code == 200, response.text
            taken, _ = stream_contents(world.state, stream)
            if any(b"after-lift" in r.data for r in taken) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert any(b"after-lift" in r.data for r in taken)
    # AND so do the workers
    _, processor, _, archive = run(payloads, suppression=listed.current)
    assert processor.totals["suppressed"] == 0
    assert len(archived(archive, "raw/")) == 4
