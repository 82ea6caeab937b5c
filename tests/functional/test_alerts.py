"""Alerts on the local stack (moto on loopback, kinesis-mock for the shard list): a bot alert
raised once through a crash and replay, shard progress reports, two workers' page watches
raising each page alert once, and `clickstream query alerts`."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from clickstream.kernel import aws
from clickstream.kernel.events import ClickEvent
from clickstream.kernel.logging import get_logger
from clickstream.kernel.retry import Backoff, GaveUp
from clickstream.local.stack import LocalStackState
from clickstream.stores import alerts as alerts_store
from clickstream.stores.alerts import AlertsTable, Rule, ShardProgress
from clickstream.stores.archive_layout import lines_of, verdict_key
from clickstream.stores.page_stats import PageMinuteState
from clickstream.stores.positions import Position
from clickstream.stores.sessions import SessionsTable
from consumer.core.aggregate import Changes
from consumer.core.anomaly import PageRules, parse_minute
from consumer.core.pending import Cadences
from consumer.failures import EXIT_FLUSH_FAILED
from consumer.metrics import Metrics
from consumer.page_watch import MAX_MINUTE_ATTEMPTS, PageWatch
from consumer.processor import ClickstreamProcessor
from consumer.sinks import DynamoStateStore, S3Archive, SaveOutcome, Tables
from consumer.testing import PassThroughStore
from producer.generator import TrafficProfile, generate
from tests.support.protocol import ScriptedDaemon, protocol_records

BACKOFF = Backoff(base_seconds=0.01, cap_seconds=0.05, deadline_seconds=2.0)


@pytest.fixture(scope="module")
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=8) as executor:
        yield executor


@pytest.fixture(scope="module")
def dynamodb(local_stack: LocalStackState) -> Any:
    return aws.local_client("dynamodb", local_stack.moto_endpoint, local_stack.region)


def fresh_alerts_table(dynamodb: Any) -> str:
    """An alerts table of its own (the stack's shape), so progress reports of other tests
    never reach this test's watermark."""
    name = f"alerts-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "rule", "AttributeType": "S"},
            {"AttributeName": "window_subject", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "rule", "KeyType": "HASH"},
            {"AttributeName": "window_subject", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def alerts_sink(dynamodb: Any, table: str, worker: str) -> AlertsTable:
    return AlertsTable(
        dynamodb,
        table,
        raised_by=worker,
        retention=timedelta(days=1),
        backoff=BACKOFF,
        log=get_logger(component="test"),
    )


class _DiesAfterTheFirstAlert(PassThroughStore):
    """A store that fails the save of the first flush that raised a bot alert: the crash
    between putting the alert and saving the state that records it."""

    def save(self, changes: Changes, now: datetime) -> SaveOutcome:
        if any(session.bot_alerted for session in changes.sessions):
            raise GaveUp("dynamodb:PutItem", 1, RuntimeError("ServiceUnavailable"))
        return self.store.save(changes, now)


def test_a_bot_alert_is_raised_once_through_a_crash_and_a_replay(
    local_stack: LocalStackState, dynamodb: Any, pool: ThreadPoolExecutor
) -> None:
    outputs = local_stack.outputs
    store = DynamoStateStore(
        dynamodb,
        Tables(sessions=outputs["SessionsTableName"], page_stats=outputs["PageStatsTableName"]),
        retention=timedelta(days=1),
        backoff=BACKOFF,
        log=get_logger(component="test"),
        pool=pool,
    )
    s3 = aws.local_client("s3", local_stack.moto_endpoint, local_stack.region)
    archive = S3Archive(
        s3, outputs["ArchiveBucketName"], backoff=BACKOFF, log=get_logger(component="t"), pool=pool
    )
    table = fresh_alerts_table(dynamodb)
    # GIVEN traffic of one shard holding two scripted sessions among people
    start = datetime.now(UTC) - timedelta(hours=2)
    events, anomalies = generate(41, start, 4_000, TrafficProfile(bot_sessions=2))
    bots = {a.subject for a in anomalies if a.kind == "bot_session"}
    assert len(bots) == 2
    records = protocol_records(events)
    clicks = [e for e in events if isinstance(e, ClickEvent)]  # the profile has no malformed
    shard = f"shardId-{uuid.uuid4().hex[:12]}"

    emitted = io.StringIO()

    def processor(state_store: Any, worker: str) -> ClickstreamProcessor:
        return ClickstreamProcessor(
            state_store,
            archive,
            alerts=alerts_sink(dynamodb, table, worker),
            metrics=Metrics(stream=emitted, dimensions={"Stream": "test"}),
            cadences=Cadences.by_records(500),
            checkpoint_backoff=BACKOFF,
            progress_interval_seconds=0.0,
        )

    # WHEN the flush that raises the first bot alert dies before the state is saved
    crashing = ScriptedDaemon().initialize(shard)
    for offset in range(0, len(records), 500):
        crashing.process(records[offset : offset + 500])
    with pytest.raises(SystemExit) as stopped:
        crashing.run(processor(_DiesAfterTheFirstAlert(store), "worker-a"))
    assert stopped.value.code == EXIT_FLUSH_FAILED
    assert crashing.checkpoints, "flushes before the alert were checkpointed"
    resume_at, _ = crashing.checkpoints[-1]
    resumed = next(i for i, r in enumerate(records) if str(r.sequence_number) == resume_at) + 1

    # AND another worker replays the shard from that checkpoint to its end
    replay = ScriptedDaemon().initialize(shard, str(resume_at))
    for offset in range(resumed, len(records), 700):
        replay.process(records[offset : offset + 700])
    replay.process([])  # KCL's call with no records: the shard is caught up
    replay.shutdown_requested()
    second = processor(store, "worker-b")
    replay.run(second)

    # THEN each bot has exactly one alert, from whichever worker put it first
    raised = AlertsTable(dynamodb, table).alerts(rules=[Rule.BOT_SESSION.value])
    assert sorted(row["subject"] for row in raised) == sorted(bots)
    for row in raised:
        assert row["observed"] >= 0.5
        assert row["details"]["signals"]
    # AND the sessions carry their score and the mark that the alert is out
    for bot in bots:
        session = SessionsTable(dynamodb, outputs["SessionsTableName"]).readable(bot)
        assert session is not None
        assert session["bot_alerted"] is True
        assert session["bot_score"] >= 0.5
    people = [e.session_id for e in clicks if not e.session_id.startswith("bot-")][:50]
    for person in people:
        session = SessionsTable(dynamodb, outputs["SessionsTableName"]).readable(person)
        assert session is not None
        assert session["bot_alerted"] is False
    # AND each bot's verdict is filed once, before the crash too, under its start hour
    for row in raised:
        key = verdict_key(row["subject"], parse_minute(row["window"]))
        body = s3.get_object(Bucket=outputs["ArchiveBucketName"], Key=key)["Body"].read()
        (line,) = lines_of(body)
        assert json.loads(line)["session_id"] == row["subject"]
    # AND the first alert is the crashed worker's (the replay's put of it was refused), the
    # second the new owner's: each raised once, as the metrics count them too
    assert sorted(row["raised_by"] for row in raised) == ["worker-a", "worker-b"]
    assert second.totals["alerts"] == 1
    documents = [json.loads(line) for line in emitted.getvalue().splitlines()]
    by_rule = [d for d in documents if "AlertsRaised" in d and d.get("Rule") == "bot_session"]
    assert len(by_rule) == 2
    assert second.totals["events"] == len(events) - resumed
    # AND the shard reported how far it got: every event flushed, caught up
    progress = alerts_sink(dynamodb, table, "reader").progress()
    assert len(progress) == 1
    assert progress[0].shard_id == shard
    assert progress[0].caught_up is True
    assert progress[0].event_watermark == max(e.timestamp for e in clicks)


MINUTE0 = datetime(2031, 1, 1, 0, 0, tzinfo=UTC)


def minute(index: int, base: datetime = MINUTE0) -> str:
    return (base + timedelta(minutes=index)).strftime("%Y-%m-%dT%H:%M")


@dataclass
class Minutes:
    """20 minutes of per-shard page counts in the page-stats table, every shard reported
    caught up past them: /pricing spikes in minute 12, / has no views in minute 15."""

    kinesis: Any
    stream: str
    page_stats: str
    alerts_table: str
    base: datetime

    def watch(self, dynamodb: Any, worker: str, kind: type[PageWatch] = PageWatch) -> PageWatch:
        watch = kind(
            dynamodb=dynamodb,
            kinesis=self.kinesis,
            stream_name=self.stream,
            page_stats_table=self.page_stats,
            alerts=alerts_sink(dynamodb, self.alerts_table, worker),
            rules=PageRules(),
            log=get_logger(component="test"),
        )
        watch.detector.next_minute = minute(0, self.base)
        return watch


def seed_minutes(
    local_stack: LocalStackState, dynamodb: Any, pool: ThreadPoolExecutor, base: datetime
) -> Minutes:
    kinesis = aws.local_client("kinesis", local_stack.kinesis_endpoint, local_stack.region)
    stream = local_stack.outputs["StreamName"]
    shards = aws.shard_ids(kinesis, stream)
    alerts_table = fresh_alerts_table(dynamodb)
    page_stats = local_stack.outputs["PageStatsTableName"]
    store = DynamoStateStore(
        dynamodb,
        Tables(sessions=local_stack.outputs["SessionsTableName"], page_stats=page_stats),
        retention=timedelta(days=1),
        backoff=BACKOFF,
        log=get_logger(component="test"),
        pool=pool,
    )
    pages: list[PageMinuteState] = []
    for index in range(20):
        totals = {"/": 400, "/pricing": 60, "/about": 8}
        if index == 12:
            totals["/pricing"] = 480
        if index == 15:
            del totals["/"]
        for shard_number, shard in enumerate(shards):
            for page, views in totals.items():
                share = views // len(shards) + (1 if shard_number < views % len(shards) else 0)
                pages.append(
                    PageMinuteState(
                        page, minute(index, base), shard, Position(index + 1), share, 0, 0
                    )
                )
    assert store.save(Changes([], pages), datetime.now(UTC)).written == len(pages)
    reporter = alerts_sink(dynamodb, alerts_table, "processors")
    for shard in shards:
        reporter.report_progress(
            ShardProgress(shard, base + timedelta(minutes=21, seconds=30), caught_up=True),
            datetime.now(UTC),
        )
    return Minutes(kinesis, stream, page_stats, alerts_table, base)


def test_two_workers_page_watches_raise_each_page_alert_once(
    local_stack: LocalStackState, dynamodb: Any, pool: ThreadPoolExecutor
) -> None:
    # GIVEN 20 minutes of per-shard page counts: /pricing spikes in minute 12, / has no
    # views in minute 15, and every shard has reported it is caught up past minute 20
    minutes = seed_minutes(local_stack, dynamodb, pool, MINUTE0)
    alerts_table = minutes.alerts_table

    # WHEN two workers' watches each make a pass
    first, second = minutes.watch(dynamodb, "worker-a"), minutes.watch(dynamodb, "worker-b")
    raised_first = first.run_once()
    raised_second = second.run_once()

    # THEN both judged the same minutes, the first raised the spike and the drop, the second
    # found them raised already
    expected = [(Rule.PAGE_SPIKE, minute(12), "/pricing"), (Rule.PAGE_DROP, minute(15), "/")]
    assert [(a.rule, a.window, a.subject) for a in raised_first] == expected
    assert raised_second == []
    assert first.detector.next_minute == second.detector.next_minute == minute(20)
    stored = AlertsTable(dynamodb, alerts_table).alerts(rules=[rule.value for rule in Rule])
    assert [(row["rule"], row["window"], row["subject"]) for row in stored] == [
        (rule.value, window, subject) for rule, window, subject in expected
    ]
    assert {row["raised_by"] for row in stored} == {"worker-a"}
    spike = stored[0]
    assert spike["observed"] == 480
    assert spike["baseline"] == pytest.approx(60, abs=1)
    assert spike["threshold"] == PageRules().z_threshold

    # AND `clickstream query alerts --json` lists them, filtered by rule and --since
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTREAM_")}
    env.update(local_stack.environment())
    env["CLICKSTREAM_ALERTS_TABLE"] = alerts_table

    def query_alerts(*args: str) -> Any:
        result = subprocess.run(
            [sys.executable, "-m", "clickstream.cli", "query", "alerts", "--json", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["alerts"]

    assert len(query_alerts()) == 2
    assert [row["subject"] for row in query_alerts("--rule", "page_drop")] == ["/"]
    assert [row["rule"] for row in query_alerts("--since", minute(13))] == ["page_drop"]
    refused = subprocess.run(
        [sys.executable, "-m", "clickstream.cli", "query", "alerts", "--since", "yesterday"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0
    assert "--since 'yesterday'" in refused.stderr
    assert alerts_store.PROGRESS_RULE not in json.dumps(query_alerts())


class _MinuteFails(PageWatch):
    """A page watch whose reads of one minute fail with a chosen error code."""

    failing_minute = ""
    code = "ValidationException"

    def _read_views(self, minute: str, shards: list[str]) -> dict[str, int]:
        if minute == self.failing_minute:
            raise ClientError({"Error": {"Code": self.code, "Message": "no"}}, "Query")
        return super()._read_views(minute, shards)


@pytest.mark.parametrize(("code", "passes"), [("ValidationException", 1), ("Throttling", 3)])
def test_a_minute_that_cannot_be_judged_is_skipped_not_retried_forever(
    local_stack: LocalStackState, dynamodb: Any, pool: ThreadPoolExecutor, code: str, passes: int
) -> None:
    # GIVEN the 20 minutes, and a watch whose reads of the spike's minute always fail
    base = datetime(2032 + passes, 1, 1, tzinfo=UTC)
    minutes = seed_minutes(local_stack, dynamodb, pool, base)
    watch = minutes.watch(dynamodb, "worker-a", _MinuteFails)
    assert isinstance(watch, _MinuteFails)
    watch.failing_minute, watch.code = minute(12, base), code
    # WHEN it makes passes: an error retrying cannot fix skips the minute at once, a
    # transient one after MAX_MINUTE_ATTEMPTS passes
    for _ in range(passes - 1):
        with pytest.raises(ClientError):
            watch.run_once()
    raised = watch.run_once()
    # THEN the minute is skipped (logged), and the minutes after it are judged
    assert passes == MAX_MINUTE_ATTEMPTS or code == "ValidationException"
    assert watch.skipped == [minute(12, base)]
    assert [(a.rule, a.window) for a in raised] == [(Rule.PAGE_DROP, minute(15, base))]
    assert watch.detector.next_minute == minute(20, base)
